import * as tls from "node:tls";

/**
 * Node's default cipher list with TLS_AES_128_GCM_SHA256 moved first: the
 * same suites (nothing dropped, so go-plugin peers and standard clients
 * negotiate as before), another order. Node puts TLS_AES_256_GCM_SHA384
 * first; Go's crypto/tls and OpenSSL's own default prefer AES-128-GCM on
 * CPUs with AES instructions, and here it encrypts a 1 MiB echo over TLS
 * 2-4% faster than AES-256-GCM (ChaCha20-Poly1305: 10-15% slower), see
 * docs/local-transports.md, "TLS on the framed paths". Our clients offer
 * this order; our servers choose by it (`honorCipherOrder`, which is what
 * node's TLS servers do with their own list unless told otherwise, and
 * what Go's do), so a client with node's default order gets AES-128-GCM.
 */
export const PREFERRED_CIPHERS = preferFirst(tls.DEFAULT_CIPHERS, "TLS_AES_128_GCM_SHA256");

/** `list` (OpenSSL cipher-list syntax, ":"-separated) with `suite` first, unless absent. */
export function preferFirst(list: string, suite: string): string {
  const entries = list.split(":");
  if (!entries.includes(suite)) return list;
  return [suite, ...entries.filter((e) => e !== suite)].join(":");
}

/** The options our TLS clients add: the preference order above. */
export const CLIENT_CIPHER_OPTIONS = { ciphers: PREFERRED_CIPHERS } as const;

/** The options our TLS servers add: they pick the first suite of ours that the client offers. */
export const SERVER_CIPHER_OPTIONS = {
  ciphers: PREFERRED_CIPHERS,
  honorCipherOrder: true,
} as const;
