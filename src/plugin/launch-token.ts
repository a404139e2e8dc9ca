import { timingSafeEqual } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import {
  HealthResponseSchema,
  PluginController,
  type HealthResponse,
} from "../gen/connectplugin/v1/controller_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { Env } from "../protocol/env.js";
import { signalBlind } from "../transport/signal-view.js";

/**
 * Reads the launch token the host sent as the first line on stdin, when its
 * environment says it did, and returns an interceptor that refuses calls
 * without it. Without a token (a go-plugin host launched us) there is
 * nothing to check and no interceptor. Resolves to "host-gone" if stdin ends
 * first: the host died before the plugin could start.
 */
export async function readLaunchToken(): Promise<Interceptor | undefined | "host-gone"> {
  const mode = process.env[Env.launchToken];
  delete process.env[Env.launchToken];
  if (mode !== "stdin") return undefined;
  const token = await firstLine(process.stdin);
  if (token === undefined) return "host-gone";
  const expected = Buffer.from(`Bearer ${token}`);
  return signalBlind((next) => (req) => {
    const given = Buffer.from(req.header.get("authorization") ?? "");
    if (given.length === expected.length && timingSafeEqual(given, expected)) return next(req);
    // Health checks (grpc.health.v1 and the controller's Health) carry no
    // secret and reveal only whether the plugin serves, so that a monitor
    // that knows the socket but not the token can ask; the Go and Python
    // plugins and docs/protocol.md exempt the same two. Handshake (plugin
    // names) and Shutdown stay behind the token.
    if (req.service.typeName === Health.typeName) return next(req);
    if (req.service.typeName === PluginController.typeName && req.method.name === "Health") {
      // The serving state only: calls_in_flight would show another local
      // user when the host makes calls (the Go and Python plugins report 0).
      return next(req).then((res) =>
        res.stream
          ? res
          : {
              ...res,
              message: create(HealthResponseSchema, {
                status: (res.message as HealthResponse).status,
              }),
            },
      );
    }
    return Promise.reject(
      new ConnectError(
        "this plugin only answers the host that launched it (missing or wrong launch token)",
        Code.Unauthenticated,
      ),
    );
  });
}

/** The first line of a stream, or undefined if it ends before one. */
function firstLine(stream: NodeJS.ReadableStream): Promise<string | undefined> {
  return new Promise((resolve) => {
    let buffered = "";
    const finish = (line: string | undefined): void => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("error", onEnd);
      stream.pause();
      resolve(line);
    };
    const onData = (chunk: Buffer | string): void => {
      buffered += chunk.toString();
      const newline = buffered.indexOf("\n");
      if (newline !== -1) finish(buffered.slice(0, newline));
    };
    const onEnd = (): void => finish(undefined);
    stream.on("data", onData);
    stream.once("end", onEnd);
    stream.once("error", onEnd);
  });
}
