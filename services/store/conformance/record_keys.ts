/** Idempotency record keys for tests that build deliveries by hand (not the service's secret). */
import { deliveryRecordKey } from "../mailbox_rules.ts";
import type { MailboxDelivery } from "../ports.ts";

/** A fixed secret: tests do not need the key to be unguessable, only stable. */
export const TEST_RECORD_SECRET = new Uint8Array(32).fill(7);

/** The delivery with the record key the service would give it under TEST_RECORD_SECRET. */
export function keyed(delivery: Omit<MailboxDelivery, "recordKey">): MailboxDelivery {
  return {
    ...delivery,
    recordKey: deliveryRecordKey(TEST_RECORD_SECRET, delivery.sender, delivery.clientMessageId),
  };
}
