// deno-lint-ignore-file no-console -- a command-line program: the terminal is its output
/**
 * `deno task demo`: end-to-end encryption, shown. Talks to a running `deno task dev` (it starts
 * nothing): Alice (a laptop and a phone) and Bob exchange messages, and after each step the demo
 * prints, side by side, what every device shows and what the server stored - ciphertext only,
 * read straight from the server's SQLite file (read-only).
 *
 *   GUARDYN_SERVER  the API address (default 127.0.0.1:8080)
 *   SQLITE_PATH     the dev server's database (default ./.guardyn/guardyn.db)
 */

import { join } from "node:path";
import { type ClientEvent, GuardynClient } from "./mod.ts";
import { messageLine } from "./cli/format.ts";
import { sideBySide } from "./demo/columns.ts";
import { containsAny, describeRow, ServerView, type StoredRow } from "./demo/server_view.ts";

const server = Deno.env.get("GUARDYN_SERVER") ?? "127.0.0.1:8080";
const sqlitePath = Deno.env.get("SQLITE_PATH") ?? "./.guardyn/guardyn.db";
const width = Deno.stdout.isTerminal() ? Math.max(100, Deno.consoleSize().columns) : 150;
const PASSWORD = "demo password, not a real one";
const suffix = crypto.randomUUID().replaceAll("-", "").slice(0, 6);

interface Device {
  label: string;
  client: GuardynClient;
  events: ClientEvent[];
}

const texts: string[] = [];
let storedSeen = 0;
let storedBytes = 0;

async function main(): Promise<number> {
  try {
    await Deno.stat(sqlitePath);
  } catch {
    console.error(`No server database at ${sqlitePath}. Start the server first: deno task dev`);
    return 1;
  }
  const dir = await Deno.makeTempDir({ prefix: "guardyn-demo-" });
  const view = new ServerView(sqlitePath);
  const devices: Device[] = [];
  const open = async (label: string, deviceName: string) => {
    const client = await GuardynClient.open({
      server,
      profilePath: join(dir, `${label.replace(/\W+/g, "-")}.profile`),
      passphrase: crypto.randomUUID(),
      deviceName,
      // Demo profiles live for a minute: a light key derivation and few prekeys keep it quick.
      kdf: { memoryKiB: 8 * 1024, iterations: 1, parallelism: 1 },
      keyPolicy: {
        prekeyTarget: 10,
        prekeyLowWater: 3,
        keyPackageTarget: 2,
        keyPackageLowWater: 1,
      },
      backoff: { baseMs: 100, capMs: 1_000 },
      callTimeoutMs: 10_000,
    });
    const device = { label, client, events: [] as ClientEvent[] };
    client.on((event) => device.events.push(event));
    devices.push(device);
    return device;
  };
  try {
    console.log(`Guardyn demo: server ${server}, server data ${sqlitePath} (read-only)\n`);
    const laptop = await open("alice · laptop", "Alice's laptop");
    const phone = await open("alice · phone", "Alice's phone");
    const bob = await open("bob", "Bob's laptop");
    const alice = await laptop.client.register(`alice_${suffix}`, PASSWORD);
    say(`1. ${alice.username} registers on her laptop: an identity key and prekeys are made there`);
    say("   and only their public halves are uploaded.");
    const linking = await phone.client.startLinking();
    say(`   Her phone shows a link code: ${linking.code.slice(0, 48)}…`);
    await laptop.client.approveLink(linking.code);
    await linking.completed;
    say("   The laptop seals the identity key to the phone's code; the server only relays it.");
    const bobAccount = await bob.client.register(`bob_${suffix}`, PASSWORD);
    say(`   ${bobAccount.username} registers on his laptop.\n`);
    const name = namer(devices);
    const accounts = [alice.accountId, bobAccount.accountId];

    const first = "Hi Bob! Lunch at noon? 🍜";
    say("2. Bob and Alice's phone are offline. Alice writes from her laptop:");
    say(`   "${first}"`);
    await send(laptop, bobAccount.username, first);
    show(devices, view.mailboxOf(accounts), name, "stored, waiting for the offline devices");

    say("3. Everybody comes online: each device fetches its envelopes, decrypts, acknowledges.");
    for (const device of devices) device.client.connect();
    await until(() => bob.client.messages(alice.accountId).length === 1, "Bob receives");
    await until(
      () => phone.client.messages(bobAccount.accountId).length === 1,
      "the phone gets the copy",
    );
    await until(() => status(laptop, bobAccount.accountId, first) === "delivered", "the receipt");
    await settle(devices);
    show(devices, view.mailboxOf(accounts), name, "acknowledged envelopes are deleted");

    const reply = "Sure - see you at noon.";
    say(`4. Bob answers: "${reply}"`);
    await laptop.client.disconnect();
    await send(bob, alice.accountId, reply);
    await until(
      () => phone.client.messages(bobAccount.accountId).length === 2,
      "the phone receives",
    );
    show(devices, view.mailboxOf(accounts), name, "Alice's laptop is offline: its copy waits");
    laptop.client.connect();
    await until(
      () => laptop.client.messages(bobAccount.accountId).length === 2,
      "the laptop catches up",
    );

    const third = "On my way!";
    say(`5. Alice reads it and answers from her phone: "${third}" - her laptop gets a sync copy.`);
    await phone.client.markRead(bobAccount.accountId);
    await send(phone, bobAccount.username, third);
    await until(() => bob.client.messages(alice.accountId).length === 3, "Bob receives");
    await until(
      () => laptop.client.messages(bobAccount.accountId).length === 3,
      "the laptop's copy",
    );
    await bob.client.markRead(alice.accountId);
    await until(() => status(phone, bobAccount.accountId, third) === "read", "the read receipt");
    await settle(devices);
    show(devices, view.mailboxOf(accounts), name, "nothing left once everything is read");

    const numbers = await Promise.all([
      laptop.client.safetyNumber(bobAccount.accountId),
      phone.client.safetyNumber(bobAccount.accountId),
      bob.client.safetyNumber(alice.accountId),
    ]);
    say("6. Safety numbers (compare them out of band to rule out a man in the middle):");
    say(`   Alice's laptop ${group(numbers[0]!)}`);
    say(`   Alice's phone  ${group(numbers[1]!)}`);
    say(`   Bob            ${group(numbers[2]!)}`);
    const same = numbers.every((n) => n === numbers[0]);
    say(`   ${same ? "They match on every device." : "THEY DIFFER."}\n`);

    const carol = await open("carol", "Carol's laptop");
    const carolAccount = await carol.client.register(`carol_${suffix}`, PASSWORD);
    carol.client.connect();
    const groupName = "lunch crew";
    say(
      `7. ${carolAccount.username} registers. Alice creates the group "${groupName}" with Bob and`,
    );
    say("   Carol over MLS: her phone joins too (every device is a member), the server orders");
    say("   the commits and relays Welcomes it cannot open.");
    const created = await laptop.client.createGroup(groupName, [
      bobAccount.accountId,
      carolAccount.accountId,
    ]);
    const members = [laptop, phone, bob, carol];
    await until(
      () => members.every((d) => d.client.groups().some((g) => g.id === created.id && g.name)),
      "every device joins the group",
    );
    const groupText = "Table for four booked at noon.";
    texts.push(groupText);
    say(`   Carol writes to the group: "${groupText}"`);
    await carol.client.sendGroupText(created.id, groupText);
    await until(
      () => members.every((d) => d.client.groupMessages(created.id).length === 1),
      "every member device reads it",
    );
    await settle(members);
    showGroup(members, created.id, [
      ...view.mailboxOf([...accounts, carolAccount.accountId]),
      ...view.groupLog(created.id),
    ], name);
    const prints = await Promise.all(members.map((d) => d.client.groupFingerprint(created.id)));
    const agreed = prints.every((p) => p === prints[0]);
    say(
      `   Group fingerprint on every device: ${prints[0]} (${
        agreed ? "all equal: no fork" : "THEY DIFFER"
      })\n`,
    );
    say(
      `Summary: the snapshots above caught ${storedSeen} stored envelopes (${storedBytes} bytes of ` +
        "ciphertext); none contained any message text.",
    );
    const photoMarker = `a photo of lunch ${suffix}`;
    const photo = new Uint8Array(200 * 1024).map((_, i) => (i * 31 + 7) & 0xff);
    photo.set(new TextEncoder().encode(photoMarker), 4096);
    const photoPath = join(dir, "lunch.jpg");
    await Deno.writeFile(photoPath, photo);
    say("8. Alice sends Bob a photo. It is encrypted while read, uploaded as ciphertext, and");
    say("   the key travels inside the E2EE message; Bob's copy appears only once checked.");
    const sentPhoto = await laptop.client.sendFile(bobAccount.accountId, photoPath);
    await until(
      () => bob.client.messages(alice.accountId).some((m) => m.file),
      "Bob receives the photo message",
    );
    const photoMessage = bob.client.messages(alice.accountId).find((m) => m.file)!;
    const savedPath = join(dir, "bob-lunch.jpg");
    await bob.client.saveFile(alice.accountId, photoMessage.id, savedPath);
    const saved = await Deno.readFile(savedPath);
    const sameBytes = saved.length === photo.length && saved.every((b, i) => b === photo[i]);
    const blobPath = join(sqlitePath, "..", "media", "blobs", sentPhoto.file!.mediaId);
    const blob = await Deno.readFile(blobPath).catch(() => undefined);
    const leaked = blob !== undefined &&
      new TextDecoder("latin1").decode(blob).includes(photoMarker);
    say(
      `   Bob saved ${photo.length} bytes, ${sameBytes ? "identical" : "DIFFERENT"}; the server's`,
    );
    say(
      `   blob is ${blob?.length ?? "?"} bytes of ciphertext; plaintext in the server's blob: ${
        leaked ? "YES" : "none"
      }\n`,
    );
    return same && agreed && sameBytes && blob !== undefined && !leaked ? 0 : 1;
  } finally {
    // Sign the demo devices out (their profiles go too); the demo accounts stay, unused.
    for (const device of devices) {
      if (device.client.account) await device.client.logout().catch(() => device.client.close());
      else await device.client.close();
    }
    view.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

function say(line: string): void {
  console.log(line);
}

async function send(from: Device, to: string, text: string): Promise<void> {
  texts.push(text);
  await from.client.sendText(to, text);
}

function status(device: Device, peer: string, body: string): string | undefined {
  return device.client.messages(peer).find((m) => m.body === body)?.status;
}

/** Prints each device's conversation and the server's mailbox rows, side by side. */
function show(
  devices: readonly Device[],
  rows: StoredRow[],
  name: (device: { accountId: string; deviceId: string }) => string,
  caption: string,
): void {
  if (containsAny(rows, texts)) throw new Error("plaintext found in the server's mailbox!");
  storedSeen += rows.length;
  storedBytes += rows.reduce((sum, row) => sum + row.content.length, 0);
  const columns = devices.map((device) => {
    const peer = device.client.conversations()[0]?.peer;
    const lines = peer
      ? device.client.messages(peer).map((m) =>
        messageLine(m, device.client.contact(peer)?.username ?? peer)
      )
      : [];
    return { title: `${device.label} shows`, lines: lines.length > 0 ? lines : ["(nothing yet)"] };
  });
  columns.push({
    title: `server stored (${caption})`,
    lines: rows.length > 0 ? rows.flatMap((row) => describeRow(row, name)) : ["(no envelopes)"],
  });
  console.log(sideBySide(columns, width).map((line) => `   ${line}`).join("\n"));
  console.log(`   plaintext in the server's rows: ${containsAny(rows, texts) ? "YES" : "none"}\n`);
}

/** Each member device's view of a group, and what the server stored for it. */
function showGroup(
  devices: readonly Device[],
  groupId: string,
  rows: StoredRow[],
  name: (device: { accountId: string; deviceId: string }) => string,
): void {
  if (containsAny(rows, texts)) throw new Error("plaintext found in the server's rows!");
  storedSeen += rows.length;
  storedBytes += rows.reduce((sum, row) => sum + row.content.length, 0);
  const columns = devices.map((device) => ({
    title: `${device.label} shows`,
    lines: device.client.groupMessages(groupId).map((m) =>
      `${m.direction === "out" ? "you" : name(m.from)}: ${m.body}`
    ),
  }));
  columns.push({
    title: "server stored (group log, waiting envelopes)",
    lines: rows.length > 0 ? rows.flatMap((row) => describeRow(row, name)) : ["(nothing)"],
  });
  console.log(sideBySide(columns, width).map((line) => `   ${line}`).join("\n"));
  console.log(`   plaintext in the server's rows: ${containsAny(rows, texts) ? "YES" : "none"}\n`);
}

function namer(devices: readonly Device[]) {
  return (device: { accountId: string; deviceId: string }) =>
    devices.find((d) => d.client.account?.deviceId === device.deviceId)?.label ??
      device.deviceId.slice(0, 8);
}

function group(digits: string): string {
  return digits.replace(/(\d{5})(?=\d)/g, "$1 ");
}

/** Lets receipts and acknowledgements land before a snapshot. */
async function settle(devices: readonly Device[]): Promise<void> {
  await Promise.all(devices.map((device) => device.client.flush().catch(() => {})));
  await new Promise((resolve) => setTimeout(resolve, 300));
  await Promise.all(devices.map((device) => device.client.flush().catch(() => {})));
}

async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

try {
  Deno.exit(await main());
} catch (error) {
  console.error(`demo failed: ${(error as Error).message}`);
  Deno.exit(1);
}
