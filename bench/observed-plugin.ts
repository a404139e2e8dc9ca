/**
 * The bench plugin as the observability benchmark runs it: BENCH_OBSERVE
 * picks the mode (see observability-sdk.ts), BENCH_LIB the connect-plugin
 * build that serves it.
 */
import { create } from "@bufbuild/protobuf";
import { BytesValueSchema } from "@bufbuild/protobuf/wkt";
import type * as PluginModule from "../src/plugin.js";
import { lib, setUp, type Mode } from "./observability-sdk.js";
import { Bench, benchHandshake } from "./service.js";

const setup = await setUp((process.env.BENCH_OBSERVE ?? "off") as Mode);
const p = (await import(`${lib}/plugin.js`)) as typeof PluginModule;
const small = new Uint8Array(16).fill(7);
await p.serve(
  {
    handshake: benchHandshake,
    plugins: {
      bench: p.implement(Bench, {
        echo: (req) => req,
        // eslint-disable-next-line @typescript-eslint/require-await -- a stream as fast as it goes
        async *stream(req) {
          const msg = create(BytesValueSchema, { value: small });
          for (let i = 0; i < Number(req.value); i++) yield msg;
        },
      }),
    },
  },
  { interceptors: setup.interceptors("server") },
);
