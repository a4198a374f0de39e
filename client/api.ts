/**
 * Calls with a policy: the access token is attached (and renewed once on TOKEN_EXPIRED), and
 * calls marked idempotent are retried on transient failures (unavailable, shutting down, rate
 * limited) with jittered exponential backoff, honouring the server's retry hint.
 */

import { Backoff, type BackoffOptions, sleep } from "./backoff.ts";
import { GuardynClientError } from "./errors.ts";
import type { TokenKeeper } from "./tokens.ts";
import type { Transport, UnaryMethod } from "./transport.ts";

export interface CallPolicy {
  /** Safe to send again after a lost response (the server deduplicates or it reads only). */
  idempotent: boolean;
}

export interface ApiOptions {
  /** How long an idempotent call keeps retrying transient failures (default 15 s). */
  retryForMs?: number;
  /** Attempts for an idempotent call, the first included (a safety cap; default 50). */
  maxAttempts?: number;
  backoff?: BackoffOptions;
  /** Called when the server says this device was revoked. */
  onRevoked?: () => void;
}

const DEFAULT_RETRY_FOR_MS = 15_000;
const DEFAULT_MAX_ATTEMPTS = 50;
const RETRY_BACKOFF: BackoffOptions = { baseMs: 200, capMs: 5_000 };
/** A server retry hint longer than this is not waited for inside one call. */
const MAX_HINT_WAIT_MS = 10_000;

export class Api {
  readonly #maxAttempts: number;
  readonly #retryForMs: number;
  readonly #backoff: BackoffOptions;

  constructor(
    readonly transport: Transport,
    readonly tokens: TokenKeeper,
    private readonly options: ApiOptions = {},
  ) {
    this.#maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    this.#retryForMs = options.retryForMs ?? DEFAULT_RETRY_FOR_MS;
    this.#backoff = options.backoff ?? RETRY_BACKOFF;
  }

  /** A call that needs no token (register, login, refresh, linking). */
  public<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, policy: CallPolicy): Promise<Res> {
    return this.#withRetries(policy, () => this.transport.unary(method, request));
  }

  /** A call as the signed-in device. */
  authed<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, policy: CallPolicy): Promise<Res> {
    return this.#withRetries(policy, async () => {
      const token = await this.tokens.accessToken();
      try {
        return await this.transport.unary(method, request, token);
      } catch (error) {
        if (error instanceof GuardynClientError && error.code === "TOKEN_EXPIRED") {
          // Clocks differ or the token was just cut: renew once and retry right away.
          return await this.transport.unary(method, request, await this.tokens.renew(token));
        }
        throw error;
      }
    });
  }

  async #withRetries<T>(policy: CallPolicy, attempt: () => Promise<T>): Promise<T> {
    const backoff = new Backoff(this.#backoff);
    const started = Date.now();
    for (let tries = 1;; tries++) {
      try {
        return await attempt();
      } catch (error) {
        if (!(error instanceof GuardynClientError)) throw error;
        if (error.code === "DEVICE_REVOKED") this.options.onRevoked?.();
        const hinted = error.details.retryAfterMs;
        const wait = hinted ?? backoff.next();
        const retry = policy.idempotent && error.retryable && tries < this.#maxAttempts &&
          Date.now() - started + wait <= this.#retryForMs && !this.transport.closed &&
          (hinted === undefined || hinted <= MAX_HINT_WAIT_MS);
        if (!retry) throw error;
        await sleep(wait);
      }
    }
  }
}
