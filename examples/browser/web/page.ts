/**
 * The browser side of the example: calls the KV plugin from another origin
 * with @connectrpc/connect-web, over the Connect protocol and over gRPC-web,
 * unary and server streaming, with a bearer token. Each call is a table row
 * whose data-state ends as "ok" or "failed"; <body data-state="done"> when
 * all have finished.
 */
import {
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { KV } from "../../kv/gen/example/kv/v1/kv_pb.js";

interface DemoConfig {
  readonly pluginUrl: string;
  readonly token: string;
}

const encode = (s: string): Uint8Array => new TextEncoder().encode(s);
const decode = (b: Uint8Array): string => new TextDecoder().decode(b);

/** One call as a table row: runs `call`, shows what it returned or how it failed. */
async function row(protocol: string, label: string, call: () => Promise<string>): Promise<void> {
  const tr = document.createElement("tr");
  tr.dataset.protocol = protocol;
  tr.dataset.call = label;
  tr.dataset.state = "running";
  for (const text of [protocol, label, "…"]) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  const result = tr.lastElementChild as HTMLTableCellElement;
  result.className = "result";
  document.getElementById("results")?.append(tr);
  try {
    result.textContent = await call();
    tr.dataset.state = "ok";
  } catch (error) {
    result.textContent = ConnectError.from(error).message;
    tr.dataset.state = "failed";
  }
}

async function exercise(protocol: string, transport: Transport, anonymous: Transport) {
  const kv = createClient(KV, transport);
  // Keys carry the page's origin, so the plugin's store shows which pages got through.
  const prefix = `${location.host}/${protocol}`;
  await row(protocol, "unary Put + Get", async () => {
    await kv.put({ key: `${prefix}/greeting`, value: encode(`hello over ${protocol}`) });
    const got = await kv.get({ key: `${prefix}/greeting` });
    return decode(got.value);
  });
  await row(protocol, "server stream Watch", async () => {
    const key = `${prefix}/counter`;
    const abort = new AbortController();
    const seen: string[] = [];
    const events = kv.watch({ key }, { signal: abort.signal })[Symbol.asyncIterator]();
    // The first event is the current value: the watch is registered from then on.
    const first = await events.next();
    if (first.done === true) throw new Error("Watch ended before its first event");
    seen.push(decode(first.value.value) || "(unset)");
    for (const n of ["1", "2", "3"]) await kv.put({ key, value: encode(n) });
    while (seen.length < 4) {
      const next = await events.next();
      if (next.done === true) throw new Error(`Watch ended after ${seen.join(" → ")}`);
      seen.push(decode(next.value.value));
    }
    abort.abort();
    return seen.join(" → ");
  });
  await row(protocol, "unary Get without token", async () => {
    try {
      await createClient(KV, anonymous).get({ key: `${prefix}/greeting` });
    } catch (error) {
      const ce = ConnectError.from(error);
      if (ce.code === Code.Unauthenticated) return `refused: ${Code[ce.code]} (${ce.rawMessage})`;
      throw error;
    }
    throw new Error("the plugin answered a call without a token");
  });
}

async function main(): Promise<void> {
  const config = (await (await fetch("config.json")).json()) as DemoConfig;
  document.getElementById("origin")!.textContent = location.origin;
  document.getElementById("plugin")!.textContent = config.pluginUrl;
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("Authorization", `Bearer ${config.token}`);
    return next(req);
  };
  const baseUrl = config.pluginUrl;
  await exercise(
    "connect",
    createConnectTransport({ baseUrl, interceptors: [bearer] }),
    createConnectTransport({ baseUrl }),
  );
  await exercise(
    "grpc-web",
    createGrpcWebTransport({ baseUrl, interceptors: [bearer] }),
    createGrpcWebTransport({ baseUrl }),
  );
}

main().then(
  () => (document.body.dataset.state = "done"),
  (error: unknown) => {
    document.body.dataset.state = "failed";
    document.body.append(String(error));
  },
);
