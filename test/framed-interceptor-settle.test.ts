/**
 * A plugin-side interceptor of a unary call that returns something other
 * than a native promise: a minimal thenable (its `then` returns nothing, as
 * thenables may), or the response itself. invokeUnary awaited whatever the
 * interceptors returned, as connect-es does; as promise chains it must still
 * accept both, rather than hand undefined to the server (which then threw
 * inside the socket's data handler) or leave the call unanswered. Over a
 * real unix socket.
 */
import { join } from "node:path";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import {
  Code,
  ConnectError,
  createClient,
  type ConnectRouter,
  type Interceptor,
  type UnaryResponse,
} from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { GetResponseSchema, KV } from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { createFramedTransport } from "../src/transport/framed/client.js";
import { FramedServer } from "../src/transport/framed/server.js";
import { tempDir } from "./helpers.js";

const routes = (router: ConnectRouter): void => {
  router.service(KV, {
    get: (req) => {
      if (req.key === "fail") throw new ConnectError("no such key", Code.NotFound);
      return { found: true };
    },
  });
};

/** Returns a thenable whose then() forwards but returns undefined. */
const bareThenable: Interceptor = (next) => (req) =>
  ({
    then(onFulfilled?: (v: unknown) => unknown, onRejected?: (e: unknown) => unknown): void {
      void next(req).then(onFulfilled, onRejected);
    },
  }) as unknown as Promise<UnaryResponse>;

/** Answers without calling next: the response itself, not a promise. */
const syncAnswer: Interceptor = () => (req) =>
  ({
    stream: false,
    service: req.service,
    method: req.method,
    header: new Headers(),
    message: create(GetResponseSchema, { found: false }),
    trailer: new Headers(),
  }) as unknown as Promise<UnaryResponse>;

const servers: FramedServer[] = [];
const closers: (() => void)[] = [];

async function client(interceptor: Interceptor) {
  const path = join(tempDir("cpfis-"), "f.sock");
  const server = await FramedServer.listen(
    routes,
    { network: "unix", path },
    {
      interceptors: [interceptor],
    },
  );
  servers.push(server);
  const transport = createFramedTransport({ network: "unix", address: path });
  closers.push(() => transport.close());
  return createClient(KV, transport.transport);
}

let viaThenable: Awaited<ReturnType<typeof client>>;
let viaSync: Awaited<ReturnType<typeof client>>;

before(async () => {
  viaThenable = await client(bareThenable);
  viaSync = await client(syncAnswer);
});

after(async () => {
  for (const close of closers) close();
  await Promise.all(servers.map((s) => s.close()));
});

test("an interceptor returning a bare thenable: the call is answered", async () => {
  assert.equal((await viaThenable.get({ key: "a" })).found, true);
});

test("an interceptor returning a bare thenable: the handler's error still reaches the caller", async () => {
  await assert.rejects(viaThenable.get({ key: "fail" }), (e: unknown) => {
    assert.equal(ConnectError.from(e).code, Code.NotFound);
    return true;
  });
});

test("an interceptor returning the response itself (no promise): the call is answered", async () => {
  assert.equal((await viaSync.get({ key: "a" })).found, false);
});
