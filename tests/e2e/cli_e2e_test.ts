/**
 * The chat CLI's command layer end to end: two people (one with a second device) register,
 * find each other, chat, compare safety numbers, link and revoke a device - typed as commands,
 * read back as the lines the terminal would show, against the real services.
 */

import { assert, assertEquals } from "../assert.ts";
import { type ChatIo, ChatSession } from "../../client/cli/commands.ts";
import {
  directoryCacheExpiry,
  startWorld,
  TEST_KDF,
  TEST_KEYS,
  uniqueName,
  type World,
  WORLD_SERVICES,
} from "./e2e_test_kit.ts";
import { NO_SANITIZERS, waitUntil } from "../support/wait.ts";

/** Scripted input (answers to prompts) and recorded output. */
class ScriptIo implements ChatIo {
  readonly lines: string[] = [];
  readonly answers: string[] = [];
  readonly prompts: string[] = [];

  print(line: string): void {
    this.lines.push(line);
  }

  ask(prompt: string): Promise<string> {
    this.prompts.push(prompt);
    const answer = this.answers.shift();
    return answer === undefined
      ? Promise.reject(new Error(`no answer for "${prompt}"`))
      : Promise.resolve(answer);
  }

  /** Lines printed since `mark` (an index into `lines`). */
  since(mark: number): string[] {
    return this.lines.slice(mark);
  }

  waitFor(pattern: RegExp, what = String(pattern)): Promise<void> {
    return waitUntil(
      () => this.lines.some((line) => pattern.test(line)),
      `${what}; got:\n${this.lines.join("\n")}`,
    );
  }
}

async function user(world: World, profile: string, ended?: () => void) {
  const io = new ScriptIo();
  const session = new ChatSession(io, {
    server: world.instances[0]!.address,
    profileDir: world.dir,
    profile,
    passphrase: "profile passphrase",
    clientOptions: { kdf: TEST_KDF, keyPolicy: TEST_KEYS, backoff: { baseMs: 50, capMs: 500 } },
    format: { utc: true },
    onEnded: ended,
  });
  await session.start();
  return { io, session };
}

Deno.test({
  name: "cli: register, chat, safety numbers, link and revoke through the command layer",
  ...NO_SANITIZERS,
  fn: async () => {
    const world = await startWorld("embedded");
    const sessions: ChatSession[] = [];
    try {
      const alice = await user(world, "alice");
      const bob = await user(world, "bob");
      sessions.push(alice.session, bob.session);
      assert(alice.io.lines.some((l) => l.includes("not signed in yet")));
      assertEquals(alice.session.prompt, "guest> ");

      const [aliceName, bobName] = [uniqueName("alice"), uniqueName("bob")];
      alice.io.answers.push("alice password", "alice password");
      await alice.session.execute(`/register ${aliceName}`);
      assert(
        alice.io.lines.some((l) => l.startsWith(`Registered ${aliceName}.`)),
        alice.io.lines.join("\n"),
      );
      bob.io.answers.push("bob password1", "bob password1");
      await bob.session.execute(`/register ${bobName}`);
      assertEquals(bob.session.prompt, `${bobName}> `);
      // A taken name and a mistyped command give readable errors, not stack traces.
      const mark = bob.io.lines.length;
      await bob.session.execute("/dance");
      await bob.session.execute("hello?");
      assertEquals(bob.io.since(mark), [
        "! unknown command /dance; /help lists them [BAD_INPUT]",
        "! no conversation is open: /open <username> [BAD_INPUT]",
      ]);
      await alice.io.waitFor(/● online/);

      await alice.session.execute(`/open ${bobName}`);
      assertEquals(alice.session.prompt, `${aliceName} → ${bobName}> `);
      await alice.session.execute("hello bob");
      // Bob is not in a conversation: he gets a notice with the sender's name.
      await bob.io.waitFor(new RegExp(`^\\(${aliceName}\\) hello bob`), "bob's notice");
      await bob.session.execute(`/open ${aliceName}`);
      assert(
        bob.io.lines.some((l) => /^\[\d\d:\d\d\] .+: hello bob$/.test(l)),
        bob.io.lines.join("\n"),
      );
      await bob.session.execute("//slash is not a command");
      await alice.io.waitFor(/: \/slash is not a command$/);
      await alice.io.waitFor(/✓✓ read: "hello bob"/);

      await alice.session.execute("/safety");
      await bob.session.execute(`/safety ${aliceName}`);
      const numberLines = (io: ScriptIo) =>
        io.lines.filter((l) => /^ {2}\d{5} \d{5} \d{5} \d{5}$/.test(l));
      assertEquals(numberLines(alice.io), numberLines(bob.io));
      assertEquals(numberLines(alice.io).length, 3);
      await bob.session.execute(`/verify ${aliceName} ${numberLines(alice.io).join(" ")}`);
      assert(bob.io.lines.includes(`✓ ${aliceName} is verified.`));
      await bob.session.execute(`/verify ${aliceName} ${"0".repeat(60)}`);
      assert(bob.io.lines.some((l) => l.startsWith("✗ The numbers differ")));

      // Alice links a phone: it shows a code, her laptop approves it.
      let phoneEnded = false;
      const phone = await user(world, "alice-phone", () => (phoneEnded = true));
      sessions.push(phone.session);
      await phone.session.execute("/link");
      const code = phone.io.lines.map((l) => l.match(/\/approve (gdnlink1\.\S+)/)?.[1]).find(
        Boolean,
      );
      assert(code, phone.io.lines.join("\n"));
      await alice.session.execute(`/approve ${code}`);
      await phone.io.waitFor(new RegExp(`^Linked! This device joined ${aliceName}`));
      await alice.io.waitFor(/A new device joined your account: "CLI alice-phone"/);
      const devices = alice.io.lines.length;
      await alice.session.execute("/devices");
      assertEquals(alice.io.since(devices).length, 2);

      await directoryCacheExpiry();
      await bob.session.execute("for both of your devices");
      await phone.io.waitFor(/for both of your devices/);
      const phoneId = phone.session.client!.account!.deviceId;
      await alice.session.execute(`/revoke ${phoneId.slice(0, 8)}`);
      await phone.io.waitFor(/This device was removed from the account/);
      await waitUntil(() => phoneEnded, "the phone's CLI is told to exit");
    } finally {
      for (const session of sessions) await session.close();
      await world.stop();
    }
  },
});

Deno.test({
  name: "cli: a group through the command layer: create, chat, add, fingerprint, leave",
  ...NO_SANITIZERS,
  fn: async () => {
    const world = await startWorld("embedded");
    const sessions: ChatSession[] = [];
    try {
      const people = await Promise.all(["ann", "ben", "cat"].map((p) => user(world, p)));
      sessions.push(...people.map((p) => p.session));
      const names = people.map((_, i) => uniqueName(["ann", "ben", "cat"][i]!));
      for (const [i, p] of people.entries()) {
        p.io.answers.push("group password", "group password");
        await p.session.execute(`/register ${names[i]}`);
        await p.io.waitFor(/● online/);
      }
      const [ann, ben, cat] = people as [typeof people[0], typeof people[0], typeof people[0]];
      await ann.session.execute(`/group-new crew ${names[1]}`);
      assert(ann.io.lines.some((l) => l.startsWith("Group #crew created with 2 devices")));
      assertEquals(ann.session.prompt, `${names[0]} → #crew> `);
      await ben.io.waitFor(/added you to a group/);
      await ann.session.execute("hello crew");
      await ben.io.waitFor(/^\(#crew\) .+: hello crew/, "ben's notice");
      await ben.session.execute("/group crew");
      await ben.session.execute("hi ann");
      await ann.io.waitFor(/^\[\d\d:\d\d\] .+: hi ann$/);
      await ann.session.execute(`/group-add ${names[2]}`);
      await cat.io.waitFor(/added you to a group/);
      await waitUntil(
        () => cat.session.client!.groups().some((g) => g.name === "crew"),
        "cat has the group named",
      );
      await cat.session.execute("/group crew");
      for (const p of people) await p.session.execute("/fingerprint");
      const prints = people.map((p) =>
        p.io.lines.findLast((l) => l.startsWith("Group fingerprint"))
      );
      assertEquals(new Set(prints).size, 1, prints.join(" / "));
      await cat.session.execute("/group-leave");
      assert(cat.io.lines.includes("You left the group."));
      await ann.io.waitFor(/^\* left: /, "ann sees cat leave");
      await waitUntil(
        () => ben.session.client!.groups().find((g) => g.name === "crew")?.epoch === 3,
        "ben applies the removal",
      );
      await ben.io.waitFor(new RegExp(`^\\[\\d\\d:\\d\\d\\] ${names[0]}: hello crew`), "names");
      await ben.session.execute("/groups");
      assert(
        ben.io.lines.some((l) => /^ {2}#crew {2}2 devices, epoch 3$/.test(l)),
        ben.io.lines.join("\n"),
      );
    } finally {
      for (const s of sessions) await s.close();
      await world.stop();
    }
  },
});

Deno.test({
  name: "cli: a file through the command layer: send with progress, save checked",
  ...NO_SANITIZERS,
  fn: async () => {
    const world = await startWorld("embedded");
    const sessions: ChatSession[] = [];
    try {
      const [ann, ben] = [await user(world, "fann"), await user(world, "fben")];
      sessions.push(ann.session, ben.session);
      const names = [uniqueName("fann"), uniqueName("fben")];
      for (const [i, p] of [ann, ben].entries()) {
        p.io.answers.push("file password", "file password");
        await p.session.execute(`/register ${names[i]}`);
        await p.io.waitFor(/● online/);
      }
      const source = `${world.dir}/report.pdf`;
      const bytes = crypto.getRandomValues(new Uint8Array(60_000));
      await Deno.writeFile(source, bytes);
      await ann.session.execute(`/open ${names[1]}`);
      await ann.session.execute(`/send ${source}`);
      assert(ann.io.lines.some((l) => l.includes("uploading [####################] 100 %")));
      assert(ann.io.lines.includes("Sent report.pdf (60.0 kB)."), ann.io.lines.join("\n"));
      await ben.io.waitFor(/📎 report\.pdf \(60\.0 kB\) .*\/save /, "ben sees the file");
      const line = ben.io.lines.find((l) => l.includes("/save "))!;
      const id = line.slice(line.lastIndexOf("/save ") + 6).trim();
      await ben.session.execute(`/open ${names[0]}`);
      const target = `${world.dir}/saved.pdf`;
      await ben.session.execute(`/save ${id} ${target}`);
      assert(
        ben.io.lines.includes(`Saved ${target} (60.0 kB), digest checked.`),
        ben.io.lines.join("\n"),
      );
      assertEquals(await Deno.readFile(target), bytes);

      // The same two commands in a group conversation: for its members.
      await ann.session.execute(`/group-new papers ${names[1]}`);
      await ben.io.waitFor(/added you to a group/);
      await waitUntil(
        () => ben.session.client!.groups().some((g) => g.name === "papers"),
        "ben has the group named",
      );
      await ben.session.execute("/group papers");
      await ann.session.execute(`/send ${source}`);
      await ben.io.waitFor(
        /^\[\d\d:\d\d\] .+: report\.pdf 📎 report\.pdf \(60\.0 kB\)/,
        "in the group",
      );
      const groupLine = ben.io.lines.findLast((l) => l.includes("/save "))!;
      const groupId = groupLine.slice(groupLine.lastIndexOf("/save ") + 6).trim();
      const groupTarget = `${world.dir}/group-saved.pdf`;
      await ben.session.execute(`/save ${groupId} ${groupTarget}`);
      assertEquals(await Deno.readFile(groupTarget), bytes);
    } finally {
      for (const s of sessions) await s.close();
      await world.stop();
    }
  },
});

Deno.test({
  name: "cli: push settings, a UnifiedPush endpoint for this device, and off again",
  ...NO_SANITIZERS,
  fn: async () => {
    const world = await startWorld("embedded", {}, [...WORLD_SERVICES, "notification"]);
    const sessions: ChatSession[] = [];
    try {
      const dan = await user(world, "dan");
      sessions.push(dan.session);
      dan.io.answers.push("push password", "push password");
      await dan.session.execute(`/register ${uniqueName("dan")}`);
      await dan.io.waitFor(/● online/);
      const deviceId = dan.session.client!.account!.deviceId;
      await dan.session.execute("/push");
      assert(
        dan.io.lines.includes("Push platforms: web-push, unified-push. Pushes carry no content."),
      );
      assert(dan.io.lines.includes("No device is registered for push."));
      await dan.session.execute("/push-register https://up.example.org/up/1234");
      assert(dan.io.lines.some((l) => l.startsWith("This device will be woken")));
      let from = dan.io.lines.length;
      await dan.session.execute("/push");
      assert(
        dan.io.since(from).includes(`* ${deviceId}  unified-push  (last push never)`),
        dan.io.lines.join("\n"),
      );
      assert(!dan.io.lines.some((l) => l.includes("up.example.org")), "tokens are never shown");
      await dan.session.execute("/push-register http://up.example.org/plain");
      assert(
        dan.io.lines.some((l) => l.includes("endpoint must be an https URL")),
        dan.io.lines.join("\n"),
      );
      await dan.session.execute("/push-off");
      from = dan.io.lines.length;
      await dan.session.execute("/push");
      assert(dan.io.since(from).includes("No device is registered for push."));
    } finally {
      for (const s of sessions) await s.close();
      await world.stop();
    }
  },
});

Deno.test({
  name: "cli: presence: status, allow with last seen, read it, disallow",
  ...NO_SANITIZERS,
  fn: async () => {
    const world = await startWorld("embedded", {}, [...WORLD_SERVICES, "presence"]);
    const sessions: ChatSession[] = [];
    try {
      const [eve, fay] = [await user(world, "eve"), await user(world, "fay")];
      sessions.push(eve.session, fay.session);
      const names = { eve: uniqueName("eve"), fay: uniqueName("fay") };
      eve.io.answers.push("eve password", "eve password");
      fay.io.answers.push("fay password", "fay password");
      await eve.session.execute(`/register ${names.eve}`);
      await fay.session.execute(`/register ${names.fay}`);
      await eve.io.waitFor(/● online/);
      await fay.io.waitFor(/● online/);
      await fay.session.execute("/presence");
      assert(fay.io.lines.includes("Nobody has allowed you to see their presence yet."));
      await eve.session.execute("/status busy writing docs");
      assert(eve.io.lines.includes("Presence: busy. Only users you /allow see it."));
      await eve.session.execute(`/add ${names.fay}`);
      await eve.session.execute(`/allow ${names.fay} --last-seen`);
      await fay.io.waitFor(/lets you see their presence and last-seen time/);
      let from = fay.io.lines.length;
      await fay.session.execute("/presence");
      assert(
        fay.io.since(from).some((l) => l.endsWith(`: busy "writing docs"`)),
        fay.io.lines.join("\n"),
      );
      await eve.session.execute(`/disallow ${names.fay}`);
      await fay.io.waitFor(/no longer shares their presence/);
      from = fay.io.lines.length;
      await fay.session.execute(`/presence ${names.eve}`);
      assert(fay.io.since(from).some((l) => l.endsWith(": offline")), fay.io.lines.join("\n"));
    } finally {
      for (const s of sessions) await s.close();
      await world.stop();
    }
  },
});
