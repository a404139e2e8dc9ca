import { createHash, timingSafeEqual } from "node:crypto";
import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import { signalBlind, withHeader } from "../transport/signal-view.js";

/**
 * The identity that `requireBearer`/`requireApiKey` verified for the call
 * (a digest of the accepted credential, never the credential itself), for
 * interceptors and handlers that run after them, such as `rateLimit`. It is
 * undefined when no auth interceptor ran before, so a value here can never
 * come from a header the client made up.
 */
export const verifiedPrincipal = createContextKey<string | undefined>(undefined, {
  description: "identity verified by requireBearer/requireApiKey",
});

const principalOf = (kind: string, credential: string): string =>
  `${kind}:${createHash("sha256").update(credential).digest("hex").slice(0, 32)}`;

/**
 * Host side: sends `authorization: Bearer <token>` on every call. Pass a
 * function to fetch a fresh token per call (short-lived tokens).
 */
export function bearerAuth(token: string | (() => string | Promise<string>)): Interceptor {
  return signalBlind((next) => async (req) => {
    const value = typeof token === "string" ? token : await token();
    const header = new Headers(req.header);
    header.set("authorization", `Bearer ${value}`);
    return next(withHeader(req, header));
  });
}

/** Host side: sends an API key in `header` (default "x-api-key") on every call. */
export function apiKeyAuth(key: string, header = "x-api-key"): Interceptor {
  return signalBlind((next) => (req) => {
    const headers = new Headers(req.header);
    headers.set(header, key);
    return next(withHeader(req, headers));
  });
}

/** A secret check that takes the same time whatever the guess. */
function matcher(
  accepted: readonly string[] | ((value: string) => boolean),
): (v: string) => boolean {
  if (typeof accepted === "function") return accepted;
  const digests = accepted.map((a) => createHash("sha256").update(a).digest());
  return (value) => {
    const d = createHash("sha256").update(value).digest();
    let ok = false;
    for (const a of digests) ok = timingSafeEqual(a, d) || ok;
    return ok;
  };
}

/** The interceptors requireBearer and requireApiKey made, so serve() knows a plugin checks callers. */
const authInterceptors = new WeakSet<Interceptor>();

/** True if `interceptor` was made by requireBearer or requireApiKey. */
export function isAuthInterceptor(interceptor: Interceptor): boolean {
  return authInterceptors.has(interceptor);
}

function auth(interceptor: Interceptor): Interceptor {
  authInterceptors.add(interceptor);
  return signalBlind(interceptor);
}

/**
 * Plugin side: rejects calls without one of the accepted bearer tokens with
 * Unauthenticated. grpc.health.v1 stays open (load balancers and the
 * host's health monitor probe it without credentials) unless
 * `protectHealth` is set.
 */
export function requireBearer(
  accepted: readonly string[] | ((token: string) => boolean),
  options: { protectHealth?: boolean } = {},
): Interceptor {
  const ok = matcher(accepted);
  return auth((next) => (req) => {
    if (!options.protectHealth && req.service.typeName === "grpc.health.v1.Health")
      return next(req);
    const value = req.header.get("authorization");
    if (value === null) {
      throw new ConnectError(
        "missing credentials: this plugin requires an `authorization: Bearer <token>` header",
        Code.Unauthenticated,
      );
    }
    const match = /^Bearer\s+(.+)$/i.exec(value);
    if (match?.[1] === undefined || !ok(match[1])) {
      throw new ConnectError("invalid bearer token", Code.Unauthenticated);
    }
    req.contextValues.set(verifiedPrincipal, principalOf("bearer", match[1]));
    return next(req);
  });
}

/** Plugin side: like requireBearer, for an API key in `header` (default "x-api-key"). */
export function requireApiKey(
  accepted: readonly string[] | ((key: string) => boolean),
  options: { header?: string; protectHealth?: boolean } = {},
): Interceptor {
  const ok = matcher(accepted);
  const name = options.header ?? "x-api-key";
  return auth((next) => (req) => {
    if (!options.protectHealth && req.service.typeName === "grpc.health.v1.Health")
      return next(req);
    const value = req.header.get(name);
    if (value === null) {
      throw new ConnectError(
        `missing credentials: this plugin requires an API key in the ${name} header`,
        Code.Unauthenticated,
      );
    }
    if (!ok(value))
      throw new ConnectError(`invalid API key in the ${name} header`, Code.Unauthenticated);
    req.contextValues.set(verifiedPrincipal, principalOf(`key:${name}`, value));
    return next(req);
  });
}
