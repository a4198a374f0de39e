/**
 * Calls on a client: the CallBook (client/calls.ts) plus what it needs from the outside - the
 * outbox to send its signals, a timer for ring deadlines, the events for the app, and TURN
 * credentials from the media service for the app's peer connection.
 */

import type { Api } from "./api.ts";
import { randomId } from "./bytes.ts";
import { CallBook, type CallInfo, type CallOutcome, type CallSend } from "./calls.ts";
import type { ClientEvent } from "./client_events.ts";
import {
  type CallMedia,
  type CallSignal,
  type IceCandidate,
  MAX_ICE_CANDIDATES,
} from "./content.ts";
import { badInput, GuardynClientError } from "./errors.ts";
import type { Outbox } from "./outbox.ts";

/** How long an outgoing call rings unless the app says otherwise. */
export const DEFAULT_RING_MS = 45_000;

/** ICE servers for RTCPeerConnection (RTCIceServer's shape). */
export interface IceServer {
  urls: string[];
  username: string;
  credential: string;
}

export interface TurnServers {
  iceServers: IceServer[];
  expiresAtMs: number;
}

export interface CallControlDeps {
  api: Api;
  outbox: Outbox;
  me: () => { accountId: string; deviceId: string };
  emit: (event: ClientEvent) => void;
  /** Runs a send in the background, reporting failures as error events. */
  spawn: (during: string, task: () => Promise<unknown>) => void;
  now: () => number;
}

export class CallControl {
  #book: CallBook | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;

  constructor(private readonly deps: CallControlDeps) {}

  #calls(): CallBook {
    this.#book ??= new CallBook(this.deps.me());
    return this.#book;
  }

  list(): CallInfo[] {
    return this.#book?.live() ?? [];
  }

  get(id: string): CallInfo | undefined {
    return this.#book?.get(id);
  }

  /** Rings every device of `peer` with our SDP offer; resolves once the offer is sent. */
  async start(
    peer: string,
    options: { sdp: string; media?: CallMedia; ringMs?: number },
  ): Promise<CallInfo> {
    const now = this.deps.now();
    const { call, send } = this.#guard(() =>
      this.#calls().startOutgoing({
        id: randomId(),
        peer,
        media: options.media ?? "audio",
        sdp: options.sdp,
        ringMs: options.ringMs ?? DEFAULT_RING_MS,
      }, now)
    );
    try {
      await this.#send(send);
    } catch (error) {
      this.#calls().end(call.id, this.deps.now());
      throw error;
    }
    this.#schedule();
    return call;
  }

  /** Answers a ringing call here; our other devices stop ringing ("answered elsewhere"). */
  async answer(id: string, sdp: string): Promise<CallInfo> {
    const { call, send } = this.#guard(() => this.#calls().answer(id, sdp, this.deps.now()));
    await this.#send(send);
    this.#schedule();
    return call;
  }

  /** Declines a ringing call, cancels our ringing one, or hangs up an active one. */
  async end(id: string): Promise<CallInfo> {
    const { call, send } = this.#guard(() => this.#calls().end(id, this.deps.now()));
    if (send) await this.#send(send);
    this.#schedule();
    return call;
  }

  /** Trickles our ICE candidates to the device at the other end (best effort, not stored). */
  async ice(id: string, candidates: IceCandidate[]): Promise<void> {
    for (let i = 0; i < candidates.length; i += MAX_ICE_CANDIDATES) {
      const chunk = candidates.slice(i, i + MAX_ICE_CANDIDATES);
      await this.#send(this.#guard(() => this.#calls().ice(id, chunk)));
    }
  }

  /** A call signal from the inbox (after the state was saved). */
  receive(
    from: { accountId: string; deviceId: string },
    serverTimestampMs: number,
    callId: string,
    signal: CallSignal,
  ): void {
    this.#apply(this.#calls().receive(from, serverTimestampMs, callId, signal, this.deps.now()));
  }

  /** TURN servers for the app's peer connection (GetTurnCredentials on the media service). */
  async turnServers(): Promise<TurnServers> {
    const media = this.deps.api.transport.media;
    const response = await this.deps.api.authed(media.getTurnCredentials.bind(media), {}, {
      idempotent: true,
    });
    return {
      iceServers: [{
        urls: [...response.urls],
        username: response.username,
        credential: response.credential,
      }],
      expiresAtMs: this.deps.now() + response.ttlSeconds * 1000,
    };
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #apply(outcome: CallOutcome): void {
    for (const send of outcome.sends) {
      this.deps.spawn("sending a call signal", () => this.#send(send));
    }
    for (const event of outcome.events) this.deps.emit(event);
    this.#schedule();
  }

  async #send(send: CallSend): Promise<void> {
    const prepared = await this.deps.outbox.prepare({
      recipient: send.peer,
      content: send.content,
      ...(send.syncContent ? { syncContent: send.syncContent } : {}),
      ephemeral: send.ephemeral,
      // Only the offer wakes anybody; the rest concerns devices already in the call.
      silent: !send.urgent && !send.ephemeral,
      ...(send.ttlSeconds !== undefined ? { ttlSeconds: send.ttlSeconds } : {}),
      urgent: send.urgent,
    });
    await this.deps.outbox.transmit(prepared);
  }

  /** The next ring deadline wakes `expire`. */
  #schedule(): void {
    if (this.#stopped || !this.#book) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const deadline = this.#book.nextDeadline();
    if (deadline === undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#apply(this.#calls().expire(this.deps.now()));
    }, Math.max(0, deadline - this.deps.now()) + 5);
  }

  #guard<T>(step: () => T): T {
    try {
      return step();
    } catch (error) {
      if (error instanceof GuardynClientError) throw error;
      throw badInput((error as Error).message);
    }
  }
}
