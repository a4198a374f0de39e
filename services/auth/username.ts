/** Usernames: case-insensitive unique, 3–32 of [a-z0-9_], stored in their canonical form. */

export const USERNAME_PATTERN = /^[a-z0-9_]{3,32}$/;

/** The canonical (lowercase) username, or undefined when it is not valid. */
export function canonicalUsername(input: string): string | undefined {
  if (input.length > 64) return undefined;
  const canonical = input.trim().toLowerCase();
  return USERNAME_PATTERN.test(canonical) ? canonical : undefined;
}

export const USERNAME_RULE = "username must be 3-32 characters of a-z, 0-9 and _";
