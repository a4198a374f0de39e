/**
 * Access tokens: short-lived JWTs signed with EdDSA (Ed25519) via `jose`, carrying the account
 * and the device. The key id (`kid`) selects the verification key, so keys rotate by adding a
 * new active key while the previous one still verifies tokens issued before the switch.
 *
 * The signing keys come from a JSON file (a Kubernetes Secret in a cluster):
 *   { "active": "<kid>", "keys": [ { "kid": "...", "kty": "OKP", "crv": "Ed25519", "x": "...", "d": "..." } ] }
 */

import { hkdfSync } from "node:crypto";
import * as jose from "jose";
import type { AuthContext, Authenticator } from "./auth.ts";
import { unauthenticated } from "./errors.ts";

export const TOKEN_AUDIENCE = "guardyn";
const ALGORITHM = "EdDSA";
const MAX_KEYS = 8;

export interface TokenKeyFile {
  active: string;
  keys: (jose.JWK & { kid: string })[];
}

export interface TokenKeys {
  activeKid: string;
  signing: CryptoKey;
  verifying: Map<string, CryptoKey>;
  /**
   * A 32-byte secret for keyed hashes that name server records without naming whom they are
   * about (the idempotency records of sends). Derived by HKDF from the active signing key, so
   * every instance has it and no second secret needs managing; a key rotation changes it,
   * which only starts a fresh idempotency window.
   */
  pseudonymKey: Uint8Array;
}

/** Generates a fresh key file content (for `deno task dev` and for operators' tooling). */
export async function generateTokenKeyFile(): Promise<TokenKeyFile> {
  const { privateKey } = await jose.generateKeyPair(ALGORITHM, { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  const kid = crypto.randomUUID();
  return { active: kid, keys: [{ ...jwk, kid, alg: ALGORITHM }] };
}

export async function importTokenKeys(file: TokenKeyFile): Promise<TokenKeys> {
  if (!file || !Array.isArray(file.keys) || file.keys.length === 0 || file.keys.length > MAX_KEYS) {
    throw new Error(`token key file must hold 1 to ${MAX_KEYS} keys`);
  }
  const verifying = new Map<string, CryptoKey>();
  let signing: CryptoKey | undefined;
  for (const jwk of file.keys) {
    if (typeof jwk.kid !== "string" || jwk.kty !== "OKP" || jwk.crv !== "Ed25519") {
      throw new Error("token keys must be Ed25519 (OKP) JWKs with a kid");
    }
    const { d: _private, ...publicJwk } = jwk;
    verifying.set(jwk.kid, await importKey(publicJwk));
    if (jwk.kid === file.active) {
      if (!jwk.d) throw new Error("the active token key must include its private part");
      signing = await importKey(jwk);
    }
  }
  if (!signing) {
    throw new Error(`active token key ${JSON.stringify(file.active)} is not in the key file`);
  }
  const active = file.keys.find((jwk) => jwk.kid === file.active)!;
  return { activeKid: file.active, signing, verifying, pseudonymKey: pseudonymKeyOf(active.d!) };
}

const PSEUDONYM_INFO = "guardyn/v1 record pseudonyms";

/** HKDF-SHA-256 of the private key bytes, with its own label: no other use shares the output. */
function pseudonymKeyOf(privateKeyBase64Url: string): Uint8Array {
  const ikm = jose.base64url.decode(privateKeyBase64Url);
  return new Uint8Array(hkdfSync("sha256", ikm, new Uint8Array(0), PSEUDONYM_INFO, 32));
}

async function importKey(jwk: jose.JWK): Promise<CryptoKey> {
  const key = await jose.importJWK(jwk, ALGORITHM);
  if (key instanceof Uint8Array) throw new Error("token keys must be asymmetric");
  return key;
}

export interface IssuedToken {
  token: string;
  expiresAtMs: number;
}

export class TokenIssuer {
  constructor(
    private readonly keys: TokenKeys,
    private readonly issuer: string,
    private readonly ttlSeconds: number,
    private readonly now: () => number = () => Date.now(),
  ) {}

  async issue(auth: AuthContext): Promise<IssuedToken> {
    const nowSeconds = Math.floor(this.now() / 1000);
    const expiresAt = nowSeconds + this.ttlSeconds;
    const claims = auth.familyId === undefined
      ? { did: auth.deviceId }
      : { did: auth.deviceId, fam: auth.familyId };
    const token = await new jose.SignJWT(claims)
      .setProtectedHeader({ alg: ALGORITHM, kid: this.keys.activeKid, typ: "at+jwt" })
      .setIssuer(this.issuer)
      .setAudience(TOKEN_AUDIENCE)
      .setSubject(auth.accountId)
      .setIssuedAt(nowSeconds)
      .setExpirationTime(expiresAt)
      .setJti(crypto.randomUUID())
      .sign(this.keys.signing);
    return { token, expiresAtMs: expiresAt * 1000 };
  }
}

/**
 * Tells whether a device, and the login its token belongs to, may still act; the auth store
 * answers it. Checked after the signature so a revoked device or a login revoked after a stolen
 * refresh token was detected is refused at once, not only when its access token expires.
 */
export type DeviceStatus = (
  accountId: string,
  deviceId: string,
  familyId?: string,
) => Promise<"active" | "revoked" | "session-revoked">;

const FAMILY_ID = /^[A-Za-z0-9_-]{1,64}$/;

export interface JwtAuthenticatorOptions {
  keys: TokenKeys;
  issuer: string;
  deviceStatus: DeviceStatus;
  now?: () => number;
  /** Verified tokens remembered (until they expire) so repeated calls skip the signature check. */
  cacheSize?: number;
}

export function jwtAuthenticator(options: JwtAuthenticatorOptions): Authenticator {
  const { keys, issuer, deviceStatus } = options;
  const now = options.now ?? (() => Date.now());
  const cacheSize = options.cacheSize ?? 10_000;
  // token -> verified claims. Keyed by the exact token string, so only a byte-identical token
  // (same signature) hits; expiry is still checked on every call, and so is the device status.
  const verified = new Map<string, { auth: AuthContext; expiresAtMs: number }>();
  const checkDevice = async (auth: AuthContext) => {
    const status = await deviceStatus(auth.accountId, auth.deviceId, auth.familyId);
    if (status === "session-revoked") {
      throw unauthenticated("TOKEN_INVALID", "this login was revoked: sign in with the password");
    }
    if (status !== "active") {
      throw unauthenticated("DEVICE_REVOKED", "this device was revoked or its account deleted");
    }
    return auth;
  };
  return {
    async verify(token: string): Promise<AuthContext> {
      const hit = verified.get(token);
      if (hit) {
        if (now() >= hit.expiresAtMs) {
          verified.delete(token);
          throw unauthenticated("TOKEN_EXPIRED", "access token expired: refresh it");
        }
        return await checkDevice(hit.auth);
      }
      let payload: jose.JWTPayload;
      try {
        ({ payload } = await jose.jwtVerify(
          token,
          (header) => {
            const key = header.kid ? keys.verifying.get(header.kid) : undefined;
            if (!key) throw new Error("unknown key id");
            return key;
          },
          {
            algorithms: [ALGORITHM],
            issuer,
            audience: TOKEN_AUDIENCE,
            typ: "at+jwt",
            currentDate: new Date(now()),
            requiredClaims: ["sub", "exp", "iat"],
          },
        ));
      } catch (error) {
        if (error instanceof jose.errors.JWTExpired) {
          throw unauthenticated("TOKEN_EXPIRED", "access token expired: refresh it");
        }
        throw unauthenticated("TOKEN_INVALID", "access token is not valid");
      }
      const accountId = payload.sub;
      const { did: deviceId, fam: familyId } = payload as { did?: unknown; fam?: unknown };
      if (
        typeof accountId !== "string" || typeof deviceId !== "string" ||
        (familyId !== undefined && (typeof familyId !== "string" || !FAMILY_ID.test(familyId)))
      ) {
        throw unauthenticated("TOKEN_INVALID", "access token is not valid");
      }
      const auth: AuthContext = familyId === undefined
        ? { accountId, deviceId }
        : { accountId, deviceId, familyId };
      if (verified.size >= cacheSize) verified.delete(verified.keys().next().value!);
      verified.set(token, { auth, expiresAtMs: (payload.exp ?? 0) * 1000 });
      return await checkDevice(auth);
    },
  };
}
