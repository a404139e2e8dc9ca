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

/** The options our TLS clients add: the preference order above (none if the operator set a list). */
export function clientCipherOptions(): { ciphers?: string } {
  return untouchedDefault() ? { ciphers: PREFERRED_CIPHERS } : {};
}

/**
 * The options our TLS servers add: they pick the first suite of ours that
 * the client offers (none if the operator set a list: node's TLS servers
 * then choose by that list's order).
 */
export function serverCipherOptions(): { ciphers?: string; honorCipherOrder?: boolean } {
  return untouchedDefault() ? { ciphers: PREFERRED_CIPHERS, honorCipherOrder: true } : {};
}
