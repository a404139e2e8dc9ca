/**
 * The servers of the alternative contenders, one per process:
 * `node servers.js KIND SOCKET` prints "ready" on stdout once it listens
 * (vscode-jsonrpc speaks on stdio instead and needs no socket).
 *
 * - raw: length-prefixed ping-pong on a unix socket, the floor. A request is
 *   [u32 length][payload]; the server writes it back. A payload of 8 bytes
 *   starting with 0xff asks for a stream: that many 16-byte frames.
 * - grpc-js: @grpc/grpc-js with the BenchService, protobuf-es (de)serializers.
 * - http-json: node:http, JSON bodies, keep-alive; the stream is NDJSON.
 * - jsonrpc: vscode-jsonrpc over stdio, as an LSP server would.
 * - h2: bare node:http2 (h2c) with gRPC's framing and trailers and nothing
 *   else, the HTTP/2 floor: each request body (a 5-byte prefix and the
 *   payload) is echoed with `grpc-status: 0` in trailers; a path of
 *   /stream/N answers N 21-byte frames. With "tcp" for the socket it
 *   listens on loopback TCP instead, the floor of the TCP rows.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as grpc from "@grpc/grpc-js";
import { grpcDefinition } from "./grpc-definition.js";
import { LengthPrefixedReader } from "./length-prefixed.js";
import {
  StreamMessageReader,
  StreamMessageWriter,
  createMessageConnection,
} from "vscode-jsonrpc/node";

const [kind, socketPath = ""] = process.argv.slice(2);

// A server outlives no host: re-parented means the host is gone (killed, crashed).
const host = process.ppid;
setInterval(() => process.ppid !== host && process.exit(0), 1_000).unref();
const small = new Uint8Array(16).fill(7);

function ready(): void {
  process.stdout.write("ready\n");
}

function main(): void {
  switch (kind) {
    case "raw": {
      net
        .createServer((socket) => {
          const reader = new LengthPrefixedReader(4);
          socket.on("data", (chunk: Buffer) => {
            let out: Buffer[] = [];
            reader.push(chunk, (frame) => {
              if (frame.length === 12 && frame[4] === 0xff) {
                const n = Number(frame.readBigUInt64BE(4) & 0xffffffffn);
                const one = Buffer.alloc(20);
                one.writeUInt32BE(16, 0);
                for (let i = 0; i < n; i++) {
                  out.push(one);
                  if (out.length === 4096) {
                    socket.write(Buffer.concat(out));
                    out = [];
                  }
                }
              } else {
                out.push(frame);
              }
            });
            if (out.length > 0)
              socket.write(out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out));
          });
          socket.on("error", () => {});
        })
        .listen(socketPath, ready);
      return;
    }
    case "grpc-js": {
      const server = new grpc.Server();
      server.addService(grpcDefinition, {
        echo: (
          call: grpc.ServerUnaryCall<Uint8Array, Uint8Array>,
          cb: grpc.sendUnaryData<Uint8Array>,
        ) => cb(null, call.request),
        stream: (call: grpc.ServerWritableStream<number, Uint8Array>) => {
          for (let i = 0; i < call.request; i++) call.write(small);
          call.end();
        },
      });
      server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => {
        if (err) throw err;
        ready();
      });
      return;
    }
    case "http-json": {
      http
        .createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
          if (req.url?.startsWith("/stream")) {
            const n = Number(new URL(req.url, "http://x").searchParams.get("n"));
            res.writeHead(200, { "content-type": "application/x-ndjson" });
            const line = `${JSON.stringify({ value: Buffer.from(small).toString("base64") })}\n`;
            let chunk = "";
            for (let i = 0; i < n; i++) {
              chunk += line;
              if (chunk.length > 64 * 1024) {
                res.write(chunk);
                chunk = "";
              }
            }
            res.end(chunk);
            return;
          }
          const parts: Buffer[] = [];
          req.on("data", (c: Buffer) => parts.push(c));
          req.on("end", () => {
            const body = JSON.parse(Buffer.concat(parts).toString()) as { value: string };
            const out = JSON.stringify({ value: body.value });
            res.writeHead(200, {
              "content-type": "application/json",
              "content-length": Buffer.byteLength(out),
            });
            res.end(out);
          });
        })
        .listen(socketPath, ready);
      return;
    }
    case "h2": {
      const frame = Buffer.alloc(21);
      frame.writeUInt32BE(16, 1);
      const h2 = http2.createServer().on("stream", (stream, headers) => {
        const path = headers[":path"] ?? "";
        const head = { ":status": 200, "content-type": "application/grpc" };
        const trailers = (): void => stream.sendTrailers({ "grpc-status": "0" });
        if (path.startsWith("/stream/")) {
          const n = Number(path.slice("/stream/".length));
          stream.resume();
          stream.respond(head, { waitForTrailers: true });
          stream.once("wantTrailers", trailers);
          const batch = Buffer.concat(Array.from({ length: 4096 }, () => frame));
          let left = n;
          const pump = (): void => {
            while (left > 0) {
              const k = Math.min(left, 4096);
              left -= k;
              if (!stream.write(k === 4096 ? batch : batch.subarray(0, k * 21))) {
                stream.once("drain", pump);
                return;
              }
            }
            stream.end();
          };
          pump();
          return;
        }
        const parts: Buffer[] = [];
        stream.on("data", (c: Buffer) => parts.push(c));
        stream.once("end", () => {
          stream.respond(head, { waitForTrailers: true });
          stream.once("wantTrailers", trailers);
          stream.end(parts.length === 1 ? parts[0] : Buffer.concat(parts));
        });
      });
      // "tcp": loopback TCP on a free port, printed ("ready 127.0.0.1:PORT").
      if (socketPath === "tcp")
        h2.listen(0, "127.0.0.1", () => {
          const { port } = h2.address() as net.AddressInfo;
          process.stdout.write(`ready 127.0.0.1:${port}\n`);
        });
      else h2.listen(socketPath, ready);
      return;
    }
    case "jsonrpc": {
      const connection = createMessageConnection(
        new StreamMessageReader(process.stdin),
        new StreamMessageWriter(process.stdout),
      );
      connection.onRequest("echo", (params: { value: string }) => ({ value: params.value }));
      connection.onRequest("stream", async (params: { n: number }) => {
        const value = Buffer.from(small).toString("base64");
        for (let i = 0; i < params.n; i++) await connection.sendNotification("item", { value });
        return { n: params.n };
      });
      connection.listen();
      return;
    }
    default:
      process.stderr.write(`unknown server kind ${kind}\n`);
      process.exit(2);
  }
}

main();
