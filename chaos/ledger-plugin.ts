/**
 * The chaos suite's plugin: the KV service, where every Put appends its key
 * (the write's unique id) to a ledger file *before* it answers. The append is
 * a synchronous write(2), so the line is in the kernel's page cache before
 * the acknowledgement leaves: SIGKILL cannot lose an acknowledged write.
 * (A machine crash could, without fsync; the suite kills processes, not
 * machines, and fsync on every write would only slow the run.)
 *
 * Environment: CONNECT_PLUGIN_LISTEN=127.0.0.1:PORT, LEDGER_FILE=path,
 * INSTANCE_ID (returned in every Get answer, so tests see who answered).
 * Keys "slow:MS:..." make a call take MS milliseconds.
 */
import { openSync, writeSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { implement, pluginLog, registerInEtcd, serve } from "../src/index.js";
import {
  GetResponseSchema,
  PutManyResponseSchema,
  PutResponseSchema,
  KV,
} from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { handshake } from "../examples/kv/shared.js";

const ledgerFile = process.env.LEDGER_FILE;
if (ledgerFile === undefined) throw new Error("LEDGER_FILE is not set");
const ledger = openSync(ledgerFile, "a");
const instance = process.env.INSTANCE_ID ?? String(process.pid);
let reads = 0;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const impl: ServiceImpl<typeof KV> = {
  async get(req) {
    reads++;
    if (req.key.startsWith("slow:")) await sleep(Number(req.key.split(":")[1]));
    return create(GetResponseSchema, {
      value: new TextEncoder().encode(`${instance}:${req.key}:${reads}`),
      found: true,
    });
  },
  async put(req) {
    // "slow:MS:id" answers MS after recording: the write has happened when
    // the host gives up on it.
    writeSync(ledger, `${req.key}\n`);
    if (req.key.startsWith("slow:")) await sleep(Number(req.key.split(":")[1]));
    return create(PutResponseSchema, {});
  },
  async *watch() {},
  async putMany(requests) {
    let count = 0;
    for await (const _ of requests) count++;
    return create(PutManyResponseSchema, { count });
  },
  async *exchange() {},
};

const handle = await serve(
  { handshake, plugins: { kv: implement(KV, impl) } },
  { gracePeriodMs: 1_000 },
);

// With ETCD_HOSTS set, the instance registers itself under a lease (and so
// disappears from discovery when it dies, once the lease expires).
if (process.env.ETCD_HOSTS) {
  await registerInEtcd({
    hosts: process.env.ETCD_HOSTS.split(","),
    prefix: process.env.ETCD_PREFIX ?? "/plugins/kv/",
    id: instance,
    url: handle.url,
    ttlSeconds: Number(process.env.ETCD_TTL ?? 2),
  });
  pluginLog("info", "registered in etcd", { id: instance });
}
