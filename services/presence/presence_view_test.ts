import { assertEquals } from "../../tests/assert.ts";
import { PresenceStatus } from "../../proto/gen/guardyn/v1/presence.ts";
import type { PresenceState } from "../store/presence_ports.ts";
import { chosenStatusOf, HIDDEN, viewOf } from "./presence_view.ts";

const WINDOW = 90_000;
const NOW = 10 * 3_600_000 + 30_500;
const state = (over: Partial<PresenceState> = {}): PresenceState => ({
  accountId: "alice",
  status: "busy",
  customText: "meeting",
  lastActiveMs: NOW - 10_000,
  ...over,
});

Deno.test("presence view: no right, no state, invisible and appear-offline all read hidden", () => {
  assertEquals(viewOf(state(), undefined, NOW, WINDOW), HIDDEN);
  assertEquals(viewOf(undefined, "last-seen", NOW, WINDOW), HIDDEN);
  assertEquals(viewOf(state({ status: "invisible" }), "last-seen", NOW, WINDOW), HIDDEN);
  // Appearing offline also hides the last-seen time: it would reveal the activity.
  assertEquals(viewOf(state({ status: "offline" }), "last-seen", NOW, WINDOW), HIDDEN);
});

Deno.test("presence view: online shows status and text; offline shows last seen by level", () => {
  assertEquals(viewOf(state(), "online", NOW, WINDOW), {
    status: PresenceStatus.PRESENCE_STATUS_BUSY,
    customText: "meeting",
    lastSeenMs: 0,
  });
  const gone = state({ lastActiveMs: NOW - WINDOW });
  assertEquals(viewOf(gone, "online", NOW, WINDOW), HIDDEN);
  const minute = Math.floor((NOW - WINDOW) / 60_000) * 60_000;
  assertEquals(viewOf(gone, "last-seen", NOW, WINDOW), { ...HIDDEN, lastSeenMs: minute });
  assertEquals(viewOf(state({ lastActiveMs: 0 }), "last-seen", NOW, WINDOW), HIDDEN);
});

Deno.test("presence view: the owner sees INVISIBLE and its own last seen", () => {
  assertEquals(viewOf(state({ status: "invisible" }), "owner", NOW, WINDOW), {
    status: PresenceStatus.PRESENCE_STATUS_INVISIBLE,
    customText: "",
    lastSeenMs: 0,
  });
  const gone = state({ lastActiveMs: NOW - 2 * WINDOW });
  assertEquals(
    viewOf(gone, "owner", NOW, WINDOW).lastSeenMs,
    Math.floor((NOW - 2 * WINDOW) / 60_000) * 60_000,
  );
  assertEquals(chosenStatusOf(PresenceStatus.PRESENCE_STATUS_UNSPECIFIED), undefined);
  assertEquals(chosenStatusOf(PresenceStatus.PRESENCE_STATUS_AWAY), "away");
});
