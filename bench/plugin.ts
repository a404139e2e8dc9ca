/** The connect-plugin bench plugin's main file. */
import { serve } from "../src/plugin.js";
import { benchPlugin } from "./service.js";

await serve(benchPlugin());
