/**
 * The TLS options every TLS end of ours adds to node's: a version floor and
 * a cipher preference, each giving way to what the operator configured.
 */
import { constants } from "node:crypto";
// The module object, not its ES namespace: the namespace keeps the value
// tls.DEFAULT_CIPHERS had at load, the module object is what an operator
// assigns (and what node's createSecureContext reads).
import tls from "node:tls";

/**
 * Node's built-in default cipher list with TLS_AES_128_GCM_SHA256 moved
 * first: the same suites (nothing dropped, so go-plugin peers and standard
 * clients negotiate as before), another order. Node puts
 * TLS_AES_256_GCM_SHA384 first (as does OpenSSL's own default); Go's
 * crypto/tls prefers AES-128-GCM on CPUs with AES instructions, and here it
 * encrypted a 1 MiB echo over TLS 2-4% faster than AES-256-GCM (within the
 * noise of a whole call; ChaCha20-Poly1305: 10-15% slower), see
 * docs/local-transports.md, "TLS on the framed paths". Our clients offer
 * this order; our servers choose by it (`honorCipherOrder`, which is what
 * node's TLS servers do with their own list unless told otherwise, and
 * what Go's do), so a client with node's default order gets AES-128-GCM.
 */
export const PREFERRED_CIPHERS = preferFirst(
  constants.defaultCoreCipherList,
  "TLS_AES_128_GCM_SHA256",
);

/** `list` (OpenSSL cipher-list syntax, ":"-separated) with `suite` first, unless absent. */
export function preferFirst(list: string, suite: string): string {
  const entries = list.split(":");
  if (!entries.includes(suite)) return list;
  return [suite, ...entries.filter((e) => e !== suite)].join(":");
}

/**
 * True while tls.DEFAULT_CIPHERS is node's built-in list. An operator who
 * set another (`--tls-cipher-list`, or assigning tls.DEFAULT_CIPHERS at run
 * time, which node documents) gets theirs, suites and order as they are:
 * a list that leaves suites out must not have them put back by ours. Read
 * at each use, not at import: an application's own code runs after its
 * imports.
 */
function untouchedDefault(): boolean {
  return tls.DEFAULT_CIPHERS === constants.defaultCoreCipherList;
}

/**
 * The lowest TLS version our ends accept: TLS 1.2 (node's own default, and
 * what go-plugin's AutoMTLS asks for), or TLS 1.3 when the operator raised
 * node's floor (`--tls-min-v1.3`, or tls.DEFAULT_MIN_VERSION set at run
 * time). An explicit `minVersion` replaces node's default, so passing
 * "TLSv1.2" as such would lower a floor the operator raised; and a floor the
 * operator lowered (`--tls-min-v1.0`) is not followed: TLS 1.0 and 1.1 stay
 * refused. Read at each use, like the cipher list.
 */
export function minTlsVersion(): "TLSv1.2" | "TLSv1.3" {
  return tls.DEFAULT_MIN_VERSION === "TLSv1.3" ? "TLSv1.3" : "TLSv1.2";
}

/**
 * The options our TLS clients add: the version floor above and the
 * preference order above (no order if the operator set a list).
 */
export function clientTlsDefaults(): { minVersion: tls.SecureVersion; ciphers?: string } {
  return {
    minVersion: minTlsVersion(),
    ...(untouchedDefault() && { ciphers: PREFERRED_CIPHERS }),
  };
}

/**
 * The options our TLS servers add: the version floor above, and they pick
 * the first suite of ours that the client offers (no order if the operator
 * set a list: node's TLS servers then choose by that list's order).
 */
export function serverTlsDefaults(): {
  minVersion: tls.SecureVersion;
  ciphers?: string;
  honorCipherOrder?: boolean;
} {
  return {
    minVersion: minTlsVersion(),
    ...(untouchedDefault() && { ciphers: PREFERRED_CIPHERS, honorCipherOrder: true }),
  };
}
