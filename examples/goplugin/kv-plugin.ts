/**
 * go-plugin's examples/grpc KV plugin, written with connect-plugin. Like the
 * Go original it keeps each key in a file "kv_<key>" in its working
 * directory, so that one host run can put and the next can get.
 *
 * Launched by go-plugin's examples/grpc host (from the repository root,
 * after `npm ci && npm run build`):
 *
 *     KV_PLUGIN="node dist/examples/goplugin/kv-plugin.js" KV_PROTO=grpc ./kv put hello world
 *
 * No top-level await, so that `connect-plugin snapshot` can build it into a
 * V8 startup snapshot (its bundle is CommonJS), launched as
 * KV_PLUGIN="node --snapshot-blob kv.blob".
 */
import { readFile, writeFile } from "node:fs/promises";
import { create } from "@bufbuild/protobuf";
import { implement, serve } from "../../src/plugin.js";
import { EmptySchema, GetResponseSchema } from "./gen/proto/kv_pb.js";
import { KV, handshake } from "./shared.js";

void serve({
  handshake,
  plugins: {
    kv: implement(KV, {
      async put(req) {
        const value = Buffer.concat([
          Buffer.from(req.value),
          Buffer.from("\n\nWritten from plugin-ts"),
        ]);
        await writeFile(`kv_${req.key}`, value);
        return create(EmptySchema, {});
      },
      async get(req) {
        return create(GetResponseSchema, { value: await readFile(`kv_${req.key}`) });
      },
    }),
  },
});
