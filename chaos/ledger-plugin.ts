/**
 * The chaos suite's plugin: the KV service, where every Put appends its key
 * (the write's unique id) to a ledger file *before* it answers. The append is
 * a synchronous write(2), so the line is in the kernel's page cache before
 * the acknowledgement leaves: SIGKILL cannot lose an acknowledged write.
 * (A machine crash could, without fsync; the suite kills processes, not
 * machines, and fsync on every write would only slow the run.)
 *
 * Environment: CONNECT_PLUGIN_LISTEN=127.0.0.1:PORT, LEDGER_FILE=path,
 * INSTANCE_ID (returned in every Get answer, so tests see who answered),
 * LEDGER_PROTOCOL_VERSIONS (e.g. "2" or "1,2": the protocol versions it
 * serves the KV service at; default 1), for rolling upgrades across versions.
 * Keys "slow:MS:..." make a call take MS milliseconds. Keys
 * "fail:CODE:MESSAGE" (CODE a Connect code name such as Unavailable)
 * record the call in the ledger, then fail with that code and message: the
 * call was executed, and the host must not take the plugin's message for a
 * transport fact.
 */
import { openSync, writeSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
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

/** For "fail:CODE:MESSAGE:..." keys: record the execution, then fail as asked. */
function failIfAsked(method: string, key: string): void {
  if (!key.startsWith("fail:")) return;
  const rest = key.slice("fail:".length);
  const colon = rest.indexOf(":");
  const codeName = rest.slice(0, colon);
  const message = rest.slice(colon + 1);
  writeSync(ledger, `${method}:${key}\n`);
  const code = Code[codeName as keyof typeof Code] as Code | undefined;
  throw new ConnectError(message, code ?? Code.Unavailable);
}

const impl: ServiceImpl<typeof KV> = {
  async get(req) {
    reads++;
    failIfAsked("get", req.key);
    if (req.key.startsWith("slow:")) await sleep(Number(req.key.split(":")[1]));
    return create(GetResponseSchema, {
      value: new TextEncoder().encode(`${instance}:${req.key}:${reads}`),
      found: true,
    });
  },
  async put(req) {
    // "slow:MS:id" answers MS after recording: the write has happened when
    // the host gives up on it.
    failIfAsked("put", req.key);
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

const kv = implement(KV, impl);
const versions = (process.env.LEDGER_PROTOCOL_VERSIONS ?? "1").split(",").map(Number);
const handle = await serve(
  { handshake, versionedPlugins: Object.fromEntries(versions.map((v) => [v, { kv }])) },
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
