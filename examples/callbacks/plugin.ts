/** The jobs plugin's main file: `node plugin.js` is started by the host. */
import { serve } from "../../src/plugin.js";
import { jobsDefinition } from "./jobs.js";

await serve(jobsDefinition());
