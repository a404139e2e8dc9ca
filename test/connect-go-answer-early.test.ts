/**
 * A real connect-go server (go/cmd/kv-answer-early) whose bidi handler
 * answers and returns while the host's request is still open: Go's HTTP/2
 * server then ends the response and resets the stream with NO_ERROR
 * (RFC 9113 §8.1). The host, over HTTP/2 on every protocol, must read the
 * whole answer and its trailers and end the call cleanly, not report it
 * cut (Unavailable) nor wait for a request that never ends.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, test } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createH2Transport } from "../src/transport/client-transport.js";
import { KV } from "../examples/kv/shared.js";
import { goBinaries, removeGoBinaries } from "./go-build.js";
import { decode } from "./helpers.js";

let url: string;
let stop: () => Promise<void> = async () => {};
before(
  async () => {
    const bin = await goBinaries({
      early: "github.com/connect-plugin/connect-plugin/go/cmd/kv-answer-early",
    });
    const child = spawn(bin.early, [], { stdio: ["pipe", "pipe", "inherit"] });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    stop = async () => {
      child.stdin.end();
      await exited;
    };
    url = await new Promise<string>((resolve, reject) => {
      child.stdout.once("data", (chunk: Buffer) => resolve(chunk.toString().trim()));
      child.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
    });
  },
  { timeout: 600_000 },
);
after(async () => {
  await stop();
  removeGoBinaries();
});

for (const protocol of ["connect", "grpc", "grpc-web"] as const) {
  test(`${protocol}: an answer that ends while the request is still open is read whole, then ends`, async () => {
    const t = createH2Transport(url, {}, { protocol });
    try {
      const kv = createClient(KV, t.transport);
      let pulled = 0;
      let stopped = false;
      const endless = async function* (): AsyncGenerator<{ key: string }> {
        try {
          for (;;) {
            pulled++;
            yield { key: "k" };
            await new Promise((r) => setTimeout(r, 20));
          }
        } finally {
          stopped = true;
        }
      };
      const got: string[] = [];
      let header: Headers | undefined;
      let trailer: Headers | undefined;
      // A deadline well past the answer: a host that waits for the request's end fails on it.
      for await (const res of kv.exchange(endless(), {
        timeoutMs: 5_000,
        onHeader: (h) => (header = h),
        onTrailer: (t) => (trailer = t),
      })) {
        got.push(decode(res.value));
      }
      assert.deepEqual(got, ["k:0", "k:1", "k:2"]);
      assert.equal(header?.get("x-head"), "early");
      assert.equal(trailer?.get("x-tail"), "early");
      assert.ok(pulled >= 1);
      // The request iterable is told to stop once the call is over.
      for (let i = 0; i < 100 && !stopped; i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(stopped, "the request iterable stopped");
    } finally {
      t.close();
    }
  });
}
