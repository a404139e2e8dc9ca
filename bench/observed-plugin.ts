/**
 * The bench plugin as the observability benchmark runs it: BENCH_OBSERVE
 * picks the mode (see observability-sdk.ts), BENCH_LIB the connect-plugin
 * build that serves it.
 */
import type * as PluginModule from "../src/plugin.js";
import { lib, setUp, type Mode } from "./observability-sdk.js";
import { Bench, benchHandlers, benchHandshake } from "./service.js";

const setup = await setUp((process.env.BENCH_OBSERVE ?? "off") as Mode);
const p = (await import(`${lib}/plugin.js`)) as typeof PluginModule;
await p.serve(
  {
    handshake: benchHandshake,
    plugins: {
      bench: p.implement(Bench, benchHandlers),
    },
  },
  { interceptors: setup.interceptors("server") },
);
