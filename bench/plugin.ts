/** The connect-plugin bench plugin's main file. */
import { serve } from "../src/plugin.js";
import { benchPlugin } from "./service.js";

// No top-level await: `connect-plugin snapshot` bundles this file as CommonJS.
void serve(benchPlugin());
