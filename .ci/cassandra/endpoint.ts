// Command-line parsing shared by the CI helper scripts: which CQL endpoint to talk to, and for how long.
import { parseArgs } from "node:util";

export interface Endpoint {
  host: string;
  port: number;
  timeoutSeconds: number;
}

const MAX_TIMEOUT_SECONDS = 1800;
const HOST_PATTERN = /^[A-Za-z0-9.:-]{1,253}$/;

/** Parses `--host H --port P --timeout S`; throws a clear error on bad input. */
export function parseEndpoint(args: string[], defaultTimeoutSeconds: number): Endpoint {
  const { values } = parseArgs({
    args,
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "9042" },
      timeout: { type: "string", default: String(defaultTimeoutSeconds) },
    },
    strict: true,
    allowPositionals: false,
  });
  if (!HOST_PATTERN.test(values.host)) throw new Error(`invalid --host '${values.host}'`);
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`--port must be an integer in 1..65535, got '${values.port}'`);
  }
  const timeoutSeconds = Number(values.timeout);
  if (
    !Number.isInteger(timeoutSeconds) || timeoutSeconds < 1 || timeoutSeconds > MAX_TIMEOUT_SECONDS
  ) {
    throw new Error(
      `--timeout must be whole seconds in 1..${MAX_TIMEOUT_SECONDS}, got '${values.timeout}'`,
    );
  }
  return { host: values.host, port, timeoutSeconds };
}
