/**
 * The client's address, for per-address limits. It is the TCP peer, unless that peer is a
 * trusted proxy (TRUSTED_PROXY_CIDRS, empty by default): then it is the right-most hop of
 * `x-forwarded-for` that is not itself a trusted proxy. Hops left of it were written by the
 * client and are never believed; a malformed hop ends the walk at the last trusted one.
 */

import ipaddr from "ipaddr.js";

export type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** At most this many CIDRs, and hops read from one header (a proxy chain is short). */
export const TRUSTED_PROXY_CIDRS_MAX = 64;
export const FORWARDED_HOPS_MAX = 16;

/** Parses "10.0.0.0/8, fd00::/8"; returns the CIDRs and a problem per bad entry. */
export function parseCidrs(entries: readonly string[]): { cidrs: Cidr[]; problems: string[] } {
  const cidrs: Cidr[] = [];
  const problems: string[] = [];
  if (entries.length > TRUSTED_PROXY_CIDRS_MAX) {
    problems.push(`TRUSTED_PROXY_CIDRS: at most ${TRUSTED_PROXY_CIDRS_MAX} entries`);
  }
  for (const entry of entries.slice(0, TRUSTED_PROXY_CIDRS_MAX)) {
    try {
      const [address, bits] = ipaddr.parseCIDR(entry);
      const plain = normalize(address);
      // ::ffff:10.0.0.0/104 is 10.0.0.0/8: mapped ranges compare as IPv4.
      const mapped = plain.kind() === "ipv4" && address.kind() === "ipv6";
      cidrs.push([plain, mapped ? Math.max(0, bits - 96) : bits]);
    } catch {
      problems.push(
        `TRUSTED_PROXY_CIDRS entry ${JSON.stringify(entry)} must be address/prefix, ` +
          "such as 10.42.0.0/16",
      );
    }
  }
  return { cidrs, problems };
}

/** IPv4-mapped IPv6 addresses (::ffff:1.2.3.4) compare as the IPv4 address they carry. */
function normalize(address: ipaddr.IPv4 | ipaddr.IPv6): ipaddr.IPv4 | ipaddr.IPv6 {
  return address.kind() === "ipv6" && (address as ipaddr.IPv6).isIPv4MappedAddress()
    ? (address as ipaddr.IPv6).toIPv4Address()
    : address;
}

function parseAddress(text: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  const trimmed = text.trim().replace(/^\[(.*)\]$/, "$1");
  if (!ipaddr.isValid(trimmed)) return undefined;
  return normalize(ipaddr.parse(trimmed));
}

function trusted(address: ipaddr.IPv4 | ipaddr.IPv6, cidrs: readonly Cidr[]): boolean {
  return cidrs.some(([range, bits]) =>
    range.kind() === address.kind() && address.match(range, bits)
  );
}

/** The address part of a gRPC peer ("ipv4:1.2.3.4:5678" → "1.2.3.4", "ipv6:[::1]:5" → "::1"). */
export function peerAddress(peer: string): string {
  const withoutScheme = peer.replace(/^ipv[46]:/, "");
  const bracketed = /^\[([^\]]+)\]/.exec(withoutScheme);
  if (bracketed?.[1]) return bracketed[1];
  const lastColon = withoutScheme.lastIndexOf(":");
  return lastColon > 0 ? withoutScheme.slice(0, lastColon) : withoutScheme;
}

/** The address per-address limits count: see the module comment. */
export function clientAddressOf(
  peer: string,
  forwardedFor: string | undefined,
  trustedProxies: readonly Cidr[],
): string {
  const direct = peerAddress(peer);
  if (trustedProxies.length === 0 || forwardedFor === undefined) return direct;
  const peerIp = parseAddress(direct);
  if (!peerIp || !trusted(peerIp, trustedProxies)) return direct;
  let client = peerIp.toString();
  const hops = forwardedFor.split(",").slice(-FORWARDED_HOPS_MAX).reverse();
  for (const hop of hops) {
    const address = parseAddress(hop);
    if (!address) break;
    client = address.toString();
    if (!trusted(address, trustedProxies)) break;
  }
  return client;
}
