import { assertEquals } from "../../tests/assert.ts";
import { clientAddressOf, parseCidrs, peerAddress } from "./client_address.ts";

const cidrs = (...entries: string[]) => parseCidrs(entries).cidrs;

Deno.test("client address: the TCP peer when no proxy is trusted, whatever the header says", () => {
  assertEquals(clientAddressOf("ipv4:10.42.0.7:5555", "203.0.113.9", []), "10.42.0.7");
  assertEquals(clientAddressOf("ipv6:[::1]:5555", undefined, cidrs("::1/128")), "::1");
});

Deno.test("client address: behind a trusted proxy, the right-most untrusted hop", () => {
  const ingress = cidrs("10.42.0.0/16");
  assertEquals(clientAddressOf("ipv4:10.42.0.7:1", "203.0.113.9", ingress), "203.0.113.9");
  // The client wrote "1.1.1.1" itself; the ingress appended the address it saw.
  assertEquals(clientAddressOf("ipv4:10.42.0.7:1", "1.1.1.1, 203.0.113.9", ingress), "203.0.113.9");
  // Two trusted proxies in a row (a load balancer in front of the ingress).
  assertEquals(
    clientAddressOf("ipv4:10.42.0.7:1", "198.51.100.4, 10.42.3.3", ingress),
    "198.51.100.4",
  );
  assertEquals(clientAddressOf("ipv4:10.42.0.7:1", "2001:db8::5", ingress), "2001:db8::5");
});

Deno.test("client address: a spoofed header from an untrusted peer is ignored", () => {
  const ingress = cidrs("10.42.0.0/16");
  assertEquals(clientAddressOf("ipv4:192.0.2.50:1", "10.42.0.1, 1.2.3.4", ingress), "192.0.2.50");
});

Deno.test("client address: malformed hops end the walk; IPv4-mapped peers match IPv4 ranges", () => {
  const ingress = cidrs("10.42.0.0/16");
  assertEquals(clientAddressOf("ipv4:10.42.0.7:1", "1.2.3.4, garbage", ingress), "10.42.0.7");
  assertEquals(clientAddressOf("ipv6:[::ffff:10.42.0.7]:1", "203.0.113.9", ingress), "203.0.113.9");
  assertEquals(clientAddressOf("ipv4:10.42.0.7:1", "10.42.0.9", ingress), "10.42.0.9");
});

Deno.test("client address: CIDRs are validated with the entry named", () => {
  assertEquals(parseCidrs(["10.0.0.0/8", "fd00::/8"]).problems, []);
  assertEquals(parseCidrs(["10.0.0.0"]).problems.length, 1);
  assertEquals(parseCidrs(["10.0.0.0/33", "x"]).problems.length, 2);
  assertEquals(peerAddress("ipv4:1.2.3.4:5678"), "1.2.3.4");
  assertEquals(peerAddress("ipv6:[2001:db8::1]:5"), "2001:db8::1");
});
