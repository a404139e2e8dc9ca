/**
 * src/plugin/launch-token.ts: the launch token check, first of a launched
 * plugin's interceptors on every call, is one of the project's own
 * interceptors, which never read a request's signal: it is marked
 * signal-blind, so that its requests get no own signal accessor per call
 * (interceptedRequest, signal-view.ts) and a blind chain stays free.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

const script = `
const { readLaunchToken } = await import(${JSON.stringify(
  fileURLToPath(new URL("../../../src/plugin/launch-token.js", import.meta.url)),
)});
const { applyInterceptors } = await import(${JSON.stringify(
  fileURLToPath(new URL("../../../src/transport/signal-view.js", import.meta.url)),
)});
const { newRequest } = await import(${JSON.stringify(
  fileURLToPath(new URL("../../../src/transport/run-call.js", import.meta.url)),
)});
const { CallAbort } = await import(${JSON.stringify(
  fileURLToPath(new URL("../../../src/transport/lazy-abort.js", import.meta.url)),
)});
const token = await readLaunchToken();
const abort = new CallAbort();
const req = newRequest(abort, false, { typeName: "example.kv.v1.KV" }, { name: "Get" }, "/x",
  new Headers({ authorization: "Bearer secret" }), undefined, {});
let seen;
await applyInterceptors((r) => { seen = r; return Promise.resolve({}); }, [token])(req);
process.stdout.write(JSON.stringify({ own: Object.hasOwn(seen, "signal"), made: abort.createdSignal !== undefined }));
`;

test("the launch token check adds no own signal to the requests it passes (signal-blind)", () => {
  const out = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    input: "secret\n",
    env: { ...process.env, CONNECT_PLUGIN_LAUNCH_TOKEN: "stdin" },
    encoding: "utf8",
  });
  assert.equal(out.status, 0, out.stderr);
  assert.deepEqual(JSON.parse(out.stdout), { own: false, made: false });
});
