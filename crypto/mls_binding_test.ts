import { encodePublicKey, generateIdentityKeyPair, type IdentityKeyPair } from "./keys.ts";
import { generateKeyPackage, GroupError, MlsGroup } from "./mls.ts";
import { signLeafBinding, verifyLeafBinding } from "./mls_binding.ts";

function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

async function assertRejects(run: () => Promise<unknown>, what: string) {
  try {
    await run();
  } catch (error) {
    if (error instanceof GroupError) return;
    throw new Error(`${what}: expected a GroupError, got ${error}`);
  }
  throw new Error(`${what}: nothing thrown`);
}

/** The key directory as clients see it: account -> identity public key (encoded). */
const directory = new Map<string, Uint8Array>();
const accounts = new Map<string, IdentityKeyPair>();
async function account(id: string) {
  const identity = await generateIdentityKeyPair();
  accounts.set(id, identity);
  directory.set(id, encodePublicKey(identity.publicKey));
  return identity;
}
const binder = (signer: IdentityKeyPair, address: string) => (key: Uint8Array) =>
  signLeafBinding(signer, address, key);
const validateMember = async (identity: string, key: Uint8Array, binding?: Uint8Array) => {
  const known = directory.get(identity.split(":")[0]!);
  return known !== undefined && await verifyLeafBinding(known, identity, key, binding);
};

Deno.test("leaf binding: members whose leaves the account signed are accepted", async () => {
  const [alice, bob] = [await account("alice"), await account("bob")];
  const group = await MlsGroup.create({
    deviceAddress: "alice:phone",
    bind: binder(alice, "alice:phone"),
    validateMember,
  });
  const bobKp = await generateKeyPackage("bob:laptop", { bind: binder(bob, "bob:laptop") });
  const pending = await group.add([bobKp.keyPackage]);
  group.mergePendingCommit();
  const joined = await MlsGroup.join(pending.welcome!, bobKp.privateKeyPackage, {
    groupInfo: pending.groupInfo,
    validateMember,
  });
  assert(joined.roster().length === 2, "bob joined, alice's leaf checked");
});

Deno.test("leaf binding: a device forged for another account is refused by every member", async () => {
  const [alice, bob, mallory] = [
    await account("alice2"),
    await account("bob2"),
    await account("mallory"),
  ];
  void bob;
  const group = await MlsGroup.create({
    deviceAddress: "alice2:phone",
    bind: binder(alice, "alice2:phone"),
    validateMember,
  });
  // Mallory makes a key package that claims to be a device of Bob, signed with her own key,
  // and one with no binding at all.
  const forged = await generateKeyPackage("bob2:evil", { bind: binder(mallory, "bob2:evil") });
  const unbound = await generateKeyPackage("bob2:evil2");
  await assertRejects(() => group.add([forged.keyPackage]), "adding a forged leaf");
  await assertRejects(() => group.add([unbound.keyPackage]), "adding an unbound leaf");

  // A member without the check (Mallory's own client) commits it anyway: others refuse it.
  const malloryKp = await generateKeyPackage("mallory:x", { bind: binder(mallory, "mallory:x") });
  const add = await group.add([malloryKp.keyPackage]);
  group.mergePendingCommit();
  const malloryGroup = await MlsGroup.join(add.welcome!, malloryKp.privateKeyPackage, {
    groupInfo: add.groupInfo,
  });
  const evil = await malloryGroup.add([forged.keyPackage]);
  await assertRejects(() => group.process(evil.commit), "processing the forged add");
  assert(group.roster().length === 2, "nothing changed");
});
