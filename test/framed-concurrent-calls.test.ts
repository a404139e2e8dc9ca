/**
 * Many callers on one framed connection, over a real unix socket: every
 * call runs exactly once and gets its own answer, with its own headers and
 * deadline, while the open frames of the host (encoded once per distinct
 * path and headers) and of the plugin (parsed once per distinct bytes) are
 * cached, and while some calls are cancelled in the middle of the others.
 */
import { join } from "node:path";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError, createClient, type ConnectRouter } from "@connectrpc/connect";
import { KV } from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { createFramedTransport } from "../src/transport/framed/client.js";
import { FramedServer } from "../src/transport/framed/server.js";
import { tempDir } from "./helpers.js";

const runs = new Map<string, number>();
const cancelled: string[] = [];

const routes = (router: ConnectRouter): void => {
  router.service(KV, {
    get: async (req, ctx) => {
      runs.set(req.key, (runs.get(req.key) ?? 0) + 1);
      if (req.key.startsWith("slow")) {
        // Held until cancelled: its caller aborts it while the others run.
        await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve()));
        cancelled.push(req.key);
        throw new ConnectError("cancelled", Code.Canceled);
      }
      ctx.responseHeader.set("x-echo", ctx.requestHeader.get("x-caller") ?? "none");
      const deadline = ctx.timeoutMs() === undefined ? "none" : "set";
      return { found: true, value: new TextEncoder().encode(`${req.key}|${deadline}`) };
    },
  });
};

let server: FramedServer;
let close: () => void;
let kv: ReturnType<typeof createClient<typeof KV>>;

before(async () => {
  const path = join(tempDir("cpfc-"), "f.sock");
  server = await FramedServer.listen(routes, { network: "unix", path });
  const transport = createFramedTransport({ network: "unix", address: path });
  close = () => transport.close();
  kv = createClient(KV, transport.transport);
});

after(async () => {
  close();
  await server.close();
});

test("64 callers, 3,200 calls: each runs once and gets its own answer, headers and deadline", async () => {
  const callers = 64;
  const each = 50;
  await Promise.all(
    Array.from({ length: callers }, async (_, c) => {
      for (let i = 0; i < each; i++) {
        const key = `c${c}-${i}`;
        // Two header values alternate (open-frame caches hit and miss), one
        // call in seven carries a deadline, one in five no header at all.
        const caller = i % 5 === 0 ? undefined : `caller-${(c + i) % 2}`;
        const timeoutMs = i % 7 === 0 ? 30_000 : undefined;
        let echoed: string | null = null;
        const res = await kv.get(
          { key },
          {
            ...(caller !== undefined && { headers: { "x-caller": caller } }),
            ...(timeoutMs !== undefined && { timeoutMs }),
            onHeader: (h) => (echoed = h.get("x-echo")),
          },
        );
        assert.equal(
          new TextDecoder().decode(res.value),
          `${key}|${timeoutMs === undefined ? "none" : "set"}`,
        );
        assert.equal(echoed, caller ?? "none", `headers of ${key}`);
      }
    }),
  );
  assert.equal(runs.size, callers * each, "no call dropped");
  for (const [key, n] of runs) assert.equal(n, 1, `${key} ran once`);
});

test("calls cancelled among 64 busy callers fail alone; their handlers see the cancel", async () => {
  runs.clear();
  const aborts = Array.from({ length: 8 }, () => new AbortController());
  const slow = aborts.map((a, i) =>
    kv.get({ key: `slow${i}` }, { signal: a.signal }).then(
      () => assert.fail("a cancelled call answered"),
      (e: unknown) => ConnectError.from(e).code,
    ),
  );
  let busy = 0;
  const fast = Array.from({ length: 64 }, async (_, c) => {
    for (let i = 0; i < 20; i++) {
      const res = await kv.get({ key: `f${c}-${i}` });
      assert.equal(new TextDecoder().decode(res.value), `f${c}-${i}|none`);
      busy++;
      if (busy === 320) for (const a of aborts) a.abort();
    }
  });
  await Promise.all(fast);
  assert.deepEqual(await Promise.all(slow), Array(8).fill(Code.Canceled));
  // The handlers' signals fire when the cancel frame arrives (waited for up
  // to 30 s, not 1 s: the machine may be loaded).
  for (let i = 0; i < 1500 && cancelled.length < 8; i++)
    await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual([...cancelled].sort(), aborts.map((_, i) => `slow${i}`).sort());
  for (const [key, n] of runs) assert.equal(n, 1, `${key} ran once`);
  assert.equal(runs.size, 64 * 20 + 8);
});
