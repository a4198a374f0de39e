/**
 * Directory scraping (audit finding 5): before, any account could page through every username
 * and account id by three-character prefix, and GetProfile showed device ids and when the
 * identity key changed. Now a prefix needs 5 characters, searches have a daily quota per
 * account, and hits are handles only (the profile fields are covered in auth_service_test.ts).
 */

import * as grpc from "@grpc/grpc-js";
import { assertEquals } from "../../tests/assert.ts";
import { register, withAuthService } from "../../tests/support/accounts_test_kit.ts";
import { failure, unary } from "../../tests/support/grpc.ts";
import { NO_SANITIZERS } from "../../tests/support/wait.ts";

Deno.test({
  name: "directory: short prefixes are refused and searches have a daily quota per account",
  ...NO_SANITIZERS,
  fn: () =>
    withAuthService({ DIRECTORY_SEARCHES_PER_DAY: "2" }, async (c) => {
      const me = await register(c);
      const search = (prefix: string) =>
        unary(
          c.directory.searchUsers.bind(c.directory),
          { prefix, page: undefined },
          me.accessToken,
        );
      const short = await failure(search("abc"));
      assertEquals([short.code, short.details], [
        grpc.status.INVALID_ARGUMENT,
        "prefix must be 5..32 characters of [a-z0-9_]",
      ]);
      const hits = await search(me.username.slice(0, 6));
      assertEquals(hits.users.map((u) => [u.accountId, u.username]), [["", me.username]]);
      await search(me.username.slice(0, 7));
      const quota = await failure(search(me.username.slice(0, 8)));
      assertEquals([quota.code, quota.reason], [grpc.status.RESOURCE_EXHAUSTED, "RATE_LIMITED"]);
    }),
});
