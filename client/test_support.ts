/** Helpers for the SDK's unit tests. */

import { GuardynClientError } from "./errors.ts";

/** The code of the GuardynClientError a promise or function fails with. */
export async function errorCode(action: () => unknown): Promise<string> {
  try {
    await action();
  } catch (error) {
    if (error instanceof GuardynClientError) return error.code;
    throw error;
  }
  throw new Error("expected a GuardynClientError");
}
