import { assertEquals } from "../tests/assert.ts";
import {
  CONVERSATIONS_MAX,
  History,
  MESSAGES_MAX,
  MESSAGES_PER_CONVERSATION,
  type StoredMessage,
} from "./history.ts";

const message = (id: string, at: number, direction: "in" | "out" = "in"): StoredMessage => ({
  id,
  direction,
  body: id,
  sentAtMs: at,
  serverTimestampMs: at,
  senderDeviceId: "d",
  status: direction === "in" ? "unread" : "sending",
  identityWarning: false,
});

Deno.test("history: server order with stable ties, no duplicates, newest conversation first", () => {
  const history = new History();
  history.add("bob", message("b", 20));
  history.add("bob", message("a", 10));
  history.add("bob", message("c", 20));
  assertEquals(history.add("bob", message("a", 10)), false);
  assertEquals(history.messages("bob").map((m) => m.id), ["a", "b", "c"]);
  history.add("carol", message("x", 30));
  assertEquals(history.conversations(), ["carol", "bob"]);
});

Deno.test("history: outgoing status only moves forward; failure only before sending", () => {
  const history = new History();
  history.add("bob", message("m", 5, "out"));
  assertEquals(history.advance("bob", "m", "sent", 50)?.serverTimestampMs, 50);
  history.advance("bob", "m", "read");
  history.advance("bob", "m", "delivered");
  history.advance("bob", "m", "failed");
  assertEquals(history.find("bob", "m")?.status, "read");
  history.add("bob", message("n", 60, "out"));
  assertEquals(history.advance("bob", "n", "failed")?.status, "failed");
  assertEquals(history.advance("bob", "unknown", "sent"), undefined);
});

Deno.test("history: read marks, bounds and the JSON form", () => {
  const history = new History();
  for (let i = 0; i < MESSAGES_PER_CONVERSATION + 5; i++) history.add("bob", message(`m${i}`, i));
  assertEquals(history.messages("bob").length, MESSAGES_PER_CONVERSATION);
  assertEquals(history.messages("bob")[0]!.id, "m5");
  assertEquals(history.markRead("bob", ["m5", "m6"]), ["m5", "m6"]);
  assertEquals(history.unread("bob").length, MESSAGES_PER_CONVERSATION - 2);
  assertEquals(history.markRead("bob").length, MESSAGES_PER_CONVERSATION - 2);
  const copy = History.fromJSON(JSON.parse(JSON.stringify(history)));
  assertEquals(copy.messages("bob"), history.messages("bob"));
});

Deno.test("history: the total bound drops the oldest messages across conversations", () => {
  const history = new History();
  const peers = Math.ceil(MESSAGES_MAX / MESSAGES_PER_CONVERSATION) + 1;
  let at = 0;
  for (let i = 0; i < MESSAGES_PER_CONVERSATION; i++) {
    for (let p = 0; p < peers; p++) history.add(`peer${p}`, message(`m${p}-${i}`, at++));
  }
  const total = history.conversations().reduce(
    (sum, peer) => sum + history.messages(peer).length,
    0,
  );
  assertEquals(total, MESSAGES_MAX);
  // What is left is the newest: every conversation lost its oldest messages first.
  const firsts = history.conversations().map((peer) =>
    history.messages(peer)[0]!.serverTimestampMs
  );
  assertEquals(Math.min(...firsts) >= at - MESSAGES_MAX, true);
});

Deno.test("history: beyond the conversation bound the least recent conversation goes", () => {
  const history = new History();
  for (let p = 0; p <= CONVERSATIONS_MAX; p++) history.add(`peer${p}`, message(`m${p}`, 1_000 + p));
  assertEquals(history.conversations().length, CONVERSATIONS_MAX);
  assertEquals(history.messages("peer0"), []);
  assertEquals(history.messages(`peer${CONVERSATIONS_MAX}`).length, 1, "the newest is kept");
});
