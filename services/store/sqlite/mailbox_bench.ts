/**
 * Mailbox throughput on the embedded store: `deno bench -A services/store/sqlite/`.
 * Messages/s = 1e9 / (time per iteration / messages per iteration).
 */
import { join } from "node:path";
import type { DeviceRef, MailboxDelivery } from "../ports.ts";
import { openSqliteStore } from "./sqlite_store.ts";
import { SQLITE_PORTS } from "../../runtime/store_ports.ts";
import { keyed } from "../conformance/record_keys.ts";

const dir = await Deno.makeTempDir({ prefix: "guardyn-bench-" });
const store = await openSqliteStore(join(dir, "bench.db"), { ports: SQLITE_PORTS });
globalThis.addEventListener("unload", () => {
  store.close();
  Deno.removeSync(dir, { recursive: true });
});

const sender: DeviceRef = { accountId: "alice", deviceId: "phone" };
const devices: DeviceRef[] = Array.from({ length: 1000 }, (_, i) => ({
  accountId: `account-${i}`,
  deviceId: "d1",
}));
/** A typical ciphertext: a short text message after Double Ratchet framing. */
const content = crypto.getRandomValues(new Uint8Array(256));
let n = 0;

function message(recipients: DeviceRef[]): MailboxDelivery {
  const now = Date.now();
  return keyed({
    sender,
    clientMessageId: `m-${++n}`,
    serverTimestampMs: now,
    expiresAtMs: now + 30 * 24 * 3600_000,
    items: recipients.map((recipient) => ({ recipient, type: 1, content })),
  });
}

Deno.bench("sqlite mailbox: deliver only, one message to one device", async () => {
  await store.mailbox.deliver(message([devices[n % devices.length]!]));
});

Deno.bench("sqlite mailbox: deliver + read + ack, one message to one device", async () => {
  const recipient = devices[n % devices.length]!;
  await store.mailbox.deliver(message([recipient]));
  const read = await store.mailbox.read(recipient, 0, 10, Date.now());
  await store.mailbox.ack(recipient, read.map((e) => e.id));
});

Deno.bench(
  "sqlite mailbox: one message to 3 devices, each reads + acks (3 envelopes)",
  async () => {
    const start = n % (devices.length - 3);
    const recipients = devices.slice(start, start + 3);
    await store.mailbox.deliver(message(recipients));
    for (const recipient of recipients) {
      const read = await store.mailbox.read(recipient, 0, 10, Date.now());
      await store.mailbox.ack(recipient, read.map((e) => e.id));
    }
  },
);

Deno.bench("sqlite mailbox: 100 messages to one device, read + ack in one batch", async () => {
  const recipient = devices[n % devices.length]!;
  for (let i = 0; i < 100; i++) await store.mailbox.deliver(message([recipient]));
  const read = await store.mailbox.read(recipient, 0, 100, Date.now());
  await store.mailbox.ack(recipient, read.map((e) => e.id));
});

// What a busy instance sees: many sends in flight at once, and acks from many streams.
Deno.bench(
  "sqlite mailbox: 64 concurrent sends to 64 devices, then 64 concurrent acks",
  async () => {
    const start = n % (devices.length - 64);
    const recipients = devices.slice(start, start + 64);
    const results = await Promise.all(recipients.map((r) => store.mailbox.deliver(message([r]))));
    await Promise.all(
      results.map((result, i) =>
        store.mailbox.ack(recipients[i]!, result.envelopes.map((e) => e.id))
      ),
    );
  },
);
