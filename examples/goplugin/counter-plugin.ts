/**
 * go-plugin's examples/bidirectional Counter plugin, written with
 * connect-plugin. Put calls back into the host: the host serves an
 * AddHelper through go-plugin's GRPCBroker and passes its id in
 * `add_server`; the plugin dials it and lets the host do the sum. Values are
 * kept as JSON in "kv_<key>" files, exactly as the Go original keeps them.
 *
 *     COUNTER_PLUGIN="node dist/examples/goplugin/counter-plugin.js" ./counter put hello 3
 */
import { readFile, writeFile } from "node:fs/promises";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { goPluginBroker, implement, serve } from "../../src/index.js";
import { EmptySchema, GetResponseSchema } from "./gen/proto/counter_pb.js";
import { AddHelper, Counter, handshake } from "./shared.js";

async function load(key: string): Promise<bigint> {
  try {
    const data = JSON.parse(await readFile(`kv_${key}`, "utf8")) as { Value?: number };
    return BigInt(data.Value ?? 0);
  } catch {
    return 0n;
  }
}

await serve({
  handshake,
  plugins: {
    counter: implement(Counter, {
      async put(req) {
        const helper = await goPluginBroker().dial(req.addServer);
        try {
          const current = await load(req.key);
          const sum = await createClient(AddHelper, helper.transport).sum({
            a: current,
            b: req.value,
          });
          await writeFile(`kv_${req.key}`, JSON.stringify({ Value: Number(sum.r) }));
        } finally {
          helper.close();
        }
        return create(EmptySchema, {});
      },
      async get(req) {
        const raw = await readFile(`kv_${req.key}`, "utf8");
        const data = JSON.parse(raw) as { Value: number };
        return create(GetResponseSchema, { value: BigInt(data.Value) });
      },
    }),
  },
});
