/**
 * CORS for the gRPC-Web/Connect listener, so a web client served from another origin can call
 * the API from a browser. Only the origins configured in HTTP_CORS_ORIGINS are answered (none by
 * default); the bearer token travels in a header, so no cookies and no credentials mode.
 */

const ALLOWED_HEADERS = [
  "authorization",
  "content-type",
  "x-request-id",
  "x-grpc-web",
  "x-user-agent",
  "grpc-timeout",
  "connect-protocol-version",
  "connect-timeout-ms",
].join(", ");

/** What a browser script may read of a response: statuses, reasons, hints, request ids. */
const EXPOSED_HEADERS = [
  "grpc-status",
  "grpc-message",
  "x-request-id",
  "guardyn-error-reason",
  "guardyn-error-detail-bin",
  "guardyn-retry-after-ms",
].join(", ");

export class CorsPolicy {
  readonly #origins: ReadonlySet<string>;

  constructor(origins: readonly string[]) {
    this.#origins = new Set(origins);
  }

  /** The origin to echo back, or undefined when this request gets no CORS headers. */
  allowed(origin: string | null): string | undefined {
    if (origin === null || this.#origins.size === 0) return undefined;
    if (this.#origins.has("*")) return "*";
    return this.#origins.has(origin) ? origin : undefined;
  }

  /** The answer to a preflight (OPTIONS): 204 with the allowed method and headers, or 403. */
  preflight(origin: string | null): Response {
    const allowed = this.allowed(origin);
    if (!allowed) return new Response(null, { status: 403 });
    return new Response(null, {
      status: 204,
      headers: {
        "access-control-allow-origin": allowed,
        "access-control-allow-methods": "POST",
        "access-control-allow-headers": ALLOWED_HEADERS,
        "access-control-max-age": "600",
        vary: "origin",
      },
    });
  }

  /** Adds the CORS headers to an answer for an allowed origin. */
  decorate(response: Response, origin: string | null): Response {
    const allowed = this.allowed(origin);
    if (!allowed) return response;
    response.headers.set("access-control-allow-origin", allowed);
    response.headers.set("access-control-expose-headers", EXPOSED_HEADERS);
    response.headers.append("vary", "origin");
    return response;
  }
}

/** Problems with HTTP_CORS_ORIGINS entries: each is "*" or an http(s) origin without a path. */
export function corsOriginProblems(origins: readonly string[]): string[] {
  return origins.flatMap((origin) => {
    if (origin === "*") return [];
    try {
      const url = new URL(origin);
      const bare = `${url.protocol}//${url.host}`;
      if ((url.protocol === "https:" || url.protocol === "http:") && bare === origin) return [];
    } catch { /* reported below */ }
    return [
      `HTTP_CORS_ORIGINS: ${
        JSON.stringify(origin)
      } is not "*" or an origin like https://app.example.org`,
    ];
  });
}
