/**
 * Push endpoints are URLs a client chose, so sending to them must not let a client make the
 * server call into its own network (SSRF). An endpoint is allowed only when every address its
 * host resolves to is public unicast; tests on loopback switch this off explicitly
 * (PUSH_ALLOW_PRIVATE_ENDPOINTS). The check runs before each send; a name that resolves
 * differently between this check and the connection (DNS rebinding) is not covered, so
 * clusters should also deny private egress to the notification pods.
 */

import ipaddr from "ipaddr.js";

export type Resolve = (host: string) => Promise<string[]>;

/** Undefined when the endpoint may be called, else why not (for logs, never the URL). */
export async function endpointRefusal(
  endpoint: string,
  resolve: Resolve,
  allowPrivate: boolean,
): Promise<string | undefined> {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return "not a URL";
  }
  if (url.protocol !== "https:") return "not https";
  if (allowPrivate) return undefined;
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const addresses = ipaddr.isValid(host) ? [host] : await resolve(host).catch(() => []);
  if (addresses.length === 0) return "the host does not resolve";
  for (const address of addresses) {
    const parsed = ipaddr.process(address);
    if (parsed.range() !== "unicast") return `the host resolves to a ${parsed.range()} address`;
  }
  return undefined;
}

/** A/AAAA lookup with Deno's resolver. */
export const resolveWithDns: Resolve = async (host) => {
  const found = await Promise.allSettled([
    Deno.resolveDns(host, "A"),
    Deno.resolveDns(host, "AAAA"),
  ]);
  return found.flatMap((result) => result.status === "fulfilled" ? result.value : []);
};
