/** guardyn.v1.DirectoryService: username search and public profiles, rate limited per caller. */

import type { DirectoryServiceService } from "../../proto/gen/guardyn/v1/auth.ts";
import { invalidArgument, notFound } from "../platform/errors.ts";
import { type Handlers, requireAuth } from "../platform/grpc_server.ts";
import type { Account } from "../store/auth_ports.ts";
import { addressableDevices } from "../store/addressable.ts";
import type { AuthContextDeps } from "./context.ts";
import { canonicalUsername, checkUserSearch } from "./account_rules.ts";
import { checkId } from "./validation.ts";

export function directoryHandlers(deps: AuthContextDeps): Handlers<typeof DirectoryServiceService> {
  const { stores, limiters } = deps;

  return {
    async searchUsers(request, ctx) {
      const auth = requireAuth(ctx);
      limiters.lookups.take(`${auth.accountId}/${auth.deviceId}`, "directory lookups");
      const { prefix, pageSize, after } = checkUserSearch(request.prefix, request.page);
      limiters.searchesByAccount.take(auth.accountId, "directory searches per day");
      const found = await stores.accounts.searchByPrefix(prefix, after, pageSize + 1);
      const page = found.slice(0, pageSize);
      return {
        // The handle only: starting a conversation goes through an exact GetProfile.
        users: page.map((account) => ({ accountId: "", username: account.username })),
        nextPageToken: found.length > pageSize ? page.at(-1)!.username : "",
      };
    },

    async getProfile(request, ctx) {
      const auth = requireAuth(ctx);
      limiters.lookups.take(`${auth.accountId}/${auth.deviceId}`, "directory lookups");
      let account: Account | undefined;
      const lookup = request.lookup;
      if (lookup?.$case === "accountId") {
        account = await stores.accounts.byId(checkId(lookup.value, "account_id"));
      } else if (lookup?.$case === "username") {
        const username = canonicalUsername(lookup.value);
        account = username ? await stores.accounts.byUsername(username) : undefined;
      } else {
        throw invalidArgument("give account_id or username");
      }
      if (!account) throw notFound("no such user");
      // Others' devices come with their prekey bundles; only our own account lists them here.
      // The account is already read: without an identity key nothing is addressable.
      const own = account.id === auth.accountId;
      const devices = own && account.identityKey
        ? await addressableDevices(stores, account.id, { identityKeyKnown: true })
        : [];
      return {
        accountId: account.id,
        username: account.username,
        deviceIds: devices.map((device) => device.id),
        identityKey: account.identityKey ?? new Uint8Array(),
        identityKeyChangedAtMs: own ? account.identityKeyChangedAtMs ?? 0 : 0,
      };
    },
  };
}
