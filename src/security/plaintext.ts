import { isIP } from "node:net";

/**
 * The one rule for "may this go over plaintext": the host of the URL must
 * be a loopback address, or the user must have opted in. Every place that
 * decides it (remote sources, cluster instances, OCI registries) asks here,
 * so the rule cannot drift between them.
 *
 * Loopback means exactly: the name `localhost`, an IPv4 address in
 * 127.0.0.0/8, or `::1`. The host is parsed, never prefix-matched, so
 * `127.0.0.1.evil.test` is a DNS name (not loopback), and other
 * `*.localhost` names are not trusted either: resolvers need not keep them
 * on this machine.
 */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (host === "localhost") return true;
  switch (isIP(host)) {
    case 4:
      return host.split(".")[0] === "127";
    case 6:
      return isIpv6Loopback(host);
    default:
      return false;
  }
}

/**
 * Why plaintext to `url` is refused, or undefined when it is allowed:
 * https://, a loopback http:// URL, or http:// with `allowPlaintext`.
 * `target` names the peer in the message ("host kv.internal", "instance
 * http://10.0.0.5:8080").
 */
export function plaintextRefusal(
  url: URL,
  allowPlaintext: boolean,
  target: string,
): string | undefined {
  if (url.protocol !== "http:" || allowPlaintext || isLoopbackHost(url.hostname)) return undefined;
  return (
    `refusing plaintext http:// to non-loopback ${target}: use https://, ` +
    `or pass { allowPlaintext: true } if the network is trusted`
  );
}

/** `::1` in any of its spellings (`0:0:0:0:0:0:0:1`, `::0:1`, `::1%lo`, ...). */
function isIpv6Loopback(host: string): boolean {
  // A zone id names an interface, not the address; isIP() lets it hold ':'
  // and '::' (`::%0:1` is ::), so it is cut off before the groups are read.
  const address = host.split("%")[0]!;
  // A dotted quad at the end (`::ffff:127.0.0.1`, `::1.0.0.1`) is an IPv4 form, never ::1.
  if (address.includes(".")) return false;
  const [head, tail] = address.split("::") as [string, string?];
  const groups = (part: string): string[] => (part === "" ? [] : part.split(":"));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  // `::` stands for the zero groups that make eight (isIP has checked the form).
  const all = [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right];
  return (
    all.slice(0, 7).every((g) => Number.parseInt(g, 16) === 0) && Number.parseInt(all[7]!, 16) === 1
  );
}
