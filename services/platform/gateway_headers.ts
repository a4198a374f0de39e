/**
 * Headers shared by the HTTP listener and the native gRPC gateway workers that forward to it
 * (kept apart so a worker loads nothing of the server kit).
 */

/** Request metadata handed to handlers; everything else in the headers is transport. */
export const FORWARDED_HEADERS = ["authorization", "x-request-id", "x-forwarded-for"] as const;
/** The workers' secret: with it, their client's peer (below) is believed. */
export const GATEWAY_HEADER = "x-guardyn-gateway";
/** The TCP peer of a worker's client ("ipv4:1.2.3.4:5678"), for per-address limits. */
export const GATEWAY_PEER_HEADER = "x-guardyn-client-peer";
