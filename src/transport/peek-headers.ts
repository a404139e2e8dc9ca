/**
 * Marks request headers whose get() and has() answer without building
 * undici's header list (IncomingHeaders, incoming-headers.ts, until
 * something copies it). A symbol of its own module: incoming-headers.ts
 * defines a subclass of `Headers`, which loads undici (Node's fetch code,
 * about 16 ms at a cold start) as soon as it is imported, and the host
 * session interceptor (plugin/host-sessions.ts), which every plugin loads,
 * asks this of every call's headers, framed calls included, which never
 * load undici (test/framed-no-undici.test.ts).
 */
export const PEEKS = Symbol("connect-plugin.headers-peek");

/** Whether `header` answers get() and has() without building a `Headers` list. */
export function peeks(header: Headers): boolean {
  return (header as { [PEEKS]?: boolean })[PEEKS] === true;
}
