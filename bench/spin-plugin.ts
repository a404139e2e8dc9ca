/** Serves `argv[2]` spin plugins (bench/spin-service.ts) from one process; 1 by default. */
import { serve } from "../src/plugin.js";
import { spinPlugins } from "./spin-service.js";

await serve(spinPlugins(Number(process.argv[2] ?? 1)));
