/**
 * A framed AutoMTLS plugin answers its Handshake and plain calls without
 * loading Node's fetch implementation (undici, about 16 ms of CPU at a
 * plugin's cold start): its request, response and trailer headers are
 * lazy (lazy-pairs-headers.ts) and the launch-token and host-session
 * interceptors read them without building a `Headers`. The plugin imports
 * connect-plugin/plugin only, as plugins do.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { PutRequestSchema } from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { fileURLToPath } from "node:url";
import { subprocess } from "../src/index.js";
import { MemoryLogger, decode, encode, kvClient } from "./helpers.js";

const leanPlugin = fileURLToPath(new URL("./fixtures/lean-kv-plugin.js", import.meta.url));

for (const autoMTLS of [true, false]) {
  test(`a framed plugin (autoMTLS: ${autoMTLS}) answers the Handshake and plain calls without loading undici`, async () => {
    const logger = new MemoryLogger();
    const client = kvClient(subprocess(process.execPath, [leanPlugin], { autoMTLS }), { logger });
    try {
      await client.start();
      const kv = client.dispense("kv");
      const protocol = decode((await kv.get({ key: "protocol" })).value);
      assert.equal(protocol, "connect-plugin-framed");
      assert.equal(
        logger.messages("stderr").includes("configuring server automatic mTLS"),
        autoMTLS,
        "the plugin runs AutoMTLS or not, as asked",
      );
      for (let i = 0; i < 5; i++) {
        await kv.put(create(PutRequestSchema, { key: `k${i}`, value: encode(`v${i}`) }));
        assert.equal(decode((await kv.get({ key: `k${i}` })).value), `v${i}`);
      }
      assert.equal(
        decode((await kv.get({ key: "undici-loaded" })).value),
        "false",
        "undici was loaded by the Handshake or a plain call",
      );
      // The signal is real: a handler that reads and writes headers loads it.
      const header = new Headers({ "x-echo": "hello" });
      let trailer: Headers | undefined;
      await kv.get({ key: "headers" }, { headers: header, onTrailer: (t) => (trailer = t) });
      assert.equal(trailer?.get("x-echo-trailer"), "hello");
      assert.equal(decode((await kv.get({ key: "undici-loaded" })).value), "true");
    } finally {
      await client.close();
    }
  });
}
