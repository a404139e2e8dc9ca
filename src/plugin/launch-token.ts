import { timingSafeEqual } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { Env } from "../protocol/env.js";

/**
 * Takes the launch token out of the environment (so that code the plugin
 * runs, and processes it starts, never see it) and returns an interceptor
 * that refuses calls without it. Without a token (a go-plugin host launched
 * us) there is nothing to check and no interceptor.
 */
export function takeLaunchToken(): Interceptor | undefined {
  const token = process.env[Env.authToken];
  delete process.env[Env.authToken];
  if (token === undefined || token === "") return undefined;
  const expected = Buffer.from(`Bearer ${token}`);
  return (next) => (req) => {
    // Health checks carry no secret and reveal nothing.
    if (req.service.typeName === Health.typeName) return next(req);
    const given = Buffer.from(req.header.get("authorization") ?? "");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return Promise.reject(
        new ConnectError(
          "this plugin only answers the host that launched it (missing or wrong launch token)",
          Code.Unauthenticated,
        ),
      );
    }
    return next(req);
  };
}
