/** Bus backend selection, parsed from the environment by services/platform/config.ts. */
export type BusConfig =
  | { backend: "memory" }
  | {
    backend: "nats";
    /** nats://host:port URLs. */
    servers: string[];
    /** Optional credentials; never logged. */
    token?: string;
    connectTimeoutMs: number;
    /** JetStream stream replicas (1 for a single server, 3 in a cluster). */
    replicas: number;
    /** Event stream name and subject prefix; default GUARDYN_EVENTS on guardyn.events. */
    stream?: string;
    subjectPrefix?: string;
  };
