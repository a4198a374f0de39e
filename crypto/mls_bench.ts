// deno-lint-ignore-file no-console -- a command-line program: the terminal is its output
import { generateKeyPackage, type KeyPackageBundle, MlsGroup } from "./mls.ts";

// A 250-member group built by one commit, plus a receiving member to measure processing.
const GROUP_SIZE = 250;
const ITERATIONS = 20;

const setupStart = performance.now();
const admin = await MlsGroup.create({ deviceAddress: "admin/1" });
const initial: KeyPackageBundle[] = [];
for (let i = 1; i < GROUP_SIZE; i++) initial.push(await generateKeyPackage(`member${i}/1`));
const keygenMs = performance.now() - setupStart;
const built = await admin.add(initial.map((b) => b.keyPackage));
admin.mergePendingCommit();
const receiver = await MlsGroup.join(built.welcome!, initial[0]!.privateKeyPackage, {
  groupInfo: built.groupInfo,
});
if (admin.roster().length !== GROUP_SIZE) throw new Error("group not built");
console.log(
  `setup: ${GROUP_SIZE - 1} key packages in ${keygenMs.toFixed(0)} ms, ` +
    `group of ${GROUP_SIZE} in ${(performance.now() - setupStart).toFixed(0)} ms`,
);

// Fresh key packages for the measured adds (each iteration discards its commit).
const joiners: KeyPackageBundle[] = [];
for (let i = 0; i < 200; i++) joiners.push(await generateKeyPackage(`joiner${i}/1`));
let next = 0;

Deno.bench(
  `add-member commit in a ${GROUP_SIZE}-member group`,
  { group: "mls", n: ITERATIONS, warmup: 2 },
  async () => {
    await admin.add([joiners[next++ % joiners.length]!.keyPackage]);
    admin.discardPendingCommit();
  },
);

Deno.bench(
  `process an add commit as a member of a ${GROUP_SIZE}-member group`,
  { group: "mls", n: ITERATIONS, warmup: 2 },
  async (b) => {
    const copy = await MlsGroup.restore(receiver.export());
    await admin.add([joiners[next++ % joiners.length]!.keyPackage]);
    const { commit } = admin.pendingCommit!;
    admin.discardPendingCommit();
    b.start();
    await copy.process(commit);
    b.end();
  },
);

Deno.bench(
  `self-update commit in a ${GROUP_SIZE}-member group`,
  { group: "mls", n: 10, warmup: 1 },
  async () => {
    await admin.update();
    admin.discardPendingCommit();
  },
);

const message = new Uint8Array(1024);
Deno.bench("encrypt + decrypt a 1 KiB application message", { group: "mls" }, async () => {
  await receiver.process(await admin.encrypt(message));
});

Deno.bench(
  "export + restore a 250-member group state",
  { group: "mls", n: ITERATIONS },
  async () => {
    await MlsGroup.restore(admin.export());
  },
);
