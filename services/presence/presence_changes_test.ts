import { assertEquals } from "../../tests/assert.ts";
import { decodeChange, encodeChange, type PresenceChange } from "./presence_changes.ts";

Deno.test("presence changes: round trip; junk and bad fields are dropped", () => {
  const changes: PresenceChange[] = [
    {
      kind: "state",
      state: { accountId: "alice", status: "away", customText: "lunch", lastActiveMs: 5 },
    },
    { kind: "grants", ownerId: "bob" },
  ];
  for (const change of changes) assertEquals(decodeChange(encodeChange(change)), change);
  const encode = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  for (
    const junk of [
      new Uint8Array([0xff, 0xfe]),
      encode({ k: "x", a: "alice" }),
      encode({ k: "s", a: "alice", s: "asleep", t: "", l: 1 }),
      encode({ k: "s", a: "alice", s: "away", t: "x".repeat(141), l: 1 }),
      encode({ k: "s", a: "alice", s: "away", t: "", l: -1 }),
      encode({ k: "g", a: "" }),
    ]
  ) {
    assertEquals(decodeChange(junk), undefined);
  }
});
