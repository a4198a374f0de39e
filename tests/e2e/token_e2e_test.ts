/**
 * Token refresh against the real auth service. Access tokens live 30 s here (the shortest the
 * server allows); the client's clock runs 29.5 s ahead, so every call finds its token about to
 * expire and refreshes first: each refresh rotates the pair, which the profile must keep.
 */

import { assert, assertEquals } from "../assert.ts";
import { ProfileFile } from "../../client/profile_file.ts";
import { ProfileState } from "../../client/profile_state.ts";
import { bodies, PASSPHRASE, registered, startWorld } from "./e2e_test_kit.ts";
import { NO_SANITIZERS, waitUntil } from "../support/wait.ts";

async function storedRefreshToken(path: string): Promise<string> {
  const file = await ProfileFile.open(path, PASSPHRASE);
  try {
    return (await ProfileState.decode(file.payload)).tokens!.refreshToken;
  } finally {
    file.close();
  }
}

Deno.test({
  name:
    "tokens: calls refresh a token about to expire; the rotated pair is saved and keeps working",
  ...NO_SANITIZERS,
  fn: async () => {
    const world = await startWorld("embedded", { ACCESS_TOKEN_TTL_SECONDS: "30" });
    try {
      const ahead = () => Date.now() + 29_500;
      const alice = await registered(world, "alice", { now: ahead });
      const bob = await registered(world, "bob");
      const aliceId = alice.client.account!.accountId;
      await alice.client.sendText(bob.client.account!.accountId, "sent with a refreshed token");
      await waitUntil(() => bodies(bob, aliceId).length === 1, "bob receives");
      await alice.client.close();
      const first = await storedRefreshToken(alice.profilePath);
      // Reopened: the saved, rotated refresh token still works.
      const again = await world.reopen(alice, { now: ahead });
      await again.client.sendText(bob.client.account!.accountId, "after a restart");
      await waitUntil(() => bodies(bob, aliceId).length === 2, "bob receives again");
      await again.client.close();
      const second = await storedRefreshToken(alice.profilePath);
      assert(first !== second, "each refresh rotates the refresh token");
      assertEquals(bodies(bob, aliceId), ["sent with a refreshed token", "after a restart"]);
    } finally {
      await world.stop();
    }
  },
});
