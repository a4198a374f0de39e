/** Errors the bus adapters raise; callers decide whether to retry. */

/** The configured NATS endpoint cannot be reached, or the connection to it is down. */
export class BusUnavailableError extends Error {
  override readonly name = "BusUnavailableError";
  constructor(message: string, readonly servers: readonly string[], options?: ErrorOptions) {
    super(message, options);
  }
}

/** The bus was closed by its owner; no further traffic is accepted. */
export class BusClosedError extends Error {
  override readonly name = "BusClosedError";
  constructor() {
    super("the bus is closed");
  }
}
