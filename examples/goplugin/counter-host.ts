/**
 * go-plugin's examples/bidirectional host, in TypeScript. For `put`, the
 * host serves an AddHelper through go-plugin's GRPCBroker and passes its id
 * to the plugin, which calls back into the host to add the numbers.
 *
 *     node dist/examples/goplugin/counter-host.js [--auto-mtls] PLUGIN_COMMAND... -- put KEY N
 */
import { create } from "@bufbuild/protobuf";
import { GoPluginClient } from "../../src/index.js";
import { SumResponseSchema } from "./gen/proto/counter_pb.js";
import { AddHelper, Counter, handshake } from "./shared.js";

const argv = process.argv.slice(2);
const autoMTLS = argv[0] === "--auto-mtls";
if (autoMTLS) argv.shift();
const split = argv.indexOf("--");
const [command, ...args] = argv.slice(0, split);
const [op, key, value] = argv.slice(split + 1);
if (split < 1 || command === undefined || key === undefined) {
  console.error(
    "usage: counter-host [--auto-mtls] PLUGIN_COMMAND [ARGS...] -- get KEY | put KEY N",
  );
  process.exit(2);
}

const client = new GoPluginClient({
  handshake,
  plugins: { counter: Counter },
  command,
  args,
  autoMTLS,
});
try {
  await client.start();
  const counter = client.dispense("counter");
  if (op === "put") {
    const broker = client.broker;
    const id = broker.nextId();
    const helper = await broker.acceptAndServe(id, (router) =>
      router.service(AddHelper, {
        sum: (req) => create(SumResponseSchema, { r: req.a + req.b }),
      }),
    );
    try {
      await counter.put({ addServer: id, key, value: BigInt(value ?? "0") });
    } finally {
      await helper.close();
    }
  } else {
    const res = await counter.get({ key });
    console.log(res.value.toString());
  }
} finally {
  await client.close();
}
