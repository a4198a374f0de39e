/**
 * Revoked devices and deleted accounts leave every group's roster mirror: a durable consumer
 * of `device.revoked` and `account.deleted` (shared by every groups instance, so each event is
 * handled once, and redelivered if an instance dies mid-way) drops the device from each group
 * it is listed in. Nothing more is sent to it; its mailbox is purged by the messaging service.
 * Its leaf stays in the MLS tree until a member commits its removal.
 */
import type { Bus, EventDelivery, Subscription } from "../bus/port.ts";
import type { Logger } from "../platform/log.ts";
import type { GroupStore } from "../store/group_ports.ts";
import type { DeviceRef } from "../store/ports.ts";

const CONSUMER = "groups-membership";
const PAGE = 500;

export async function startMembershipLifecycle(deps: {
  bus: Bus;
  groups: GroupStore;
  log: Logger;
}): Promise<Subscription> {
  return await deps.bus.consume(
    CONSUMER,
    ["device.revoked", "account.deleted"],
    (delivery) => handleMembershipEvent(deps, delivery),
  );
}

export async function handleMembershipEvent(
  deps: { groups: GroupStore; log: Logger },
  delivery: EventDelivery,
): Promise<void> {
  const event = delivery.event;
  const devices: DeviceRef[] = event.kind === "device.revoked"
    ? [{ accountId: event.accountId, deviceId: event.deviceId }]
    : event.kind === "account.deleted"
    ? (event.deviceIds ?? []).map((deviceId) => ({ accountId: event.accountId, deviceId }))
    : [];
  for (const device of devices) {
    let dropped = 0;
    let after: Uint8Array | undefined;
    for (;;) {
      const page = await deps.groups.groupsOf(device, after, PAGE);
      for (const { groupId } of page) {
        if (await deps.groups.dropMember(groupId, device)) dropped++;
      }
      if (page.length < PAGE) break;
      after = page.at(-1)!.groupId;
    }
    if (dropped > 0) {
      deps.log.info("device left its groups", { reason: event.kind, groups: dropped });
    }
  }
}
