/**
 * Call signaling as a state machine: what a call signal from a peer (or from our own other
 * devices) does to this device's calls, which signals to send back, and what the app is told.
 * No I/O and no clock of its own: the client feeds it signals, the time, and sends what it
 * returns. Media is the app's (WebRTC); this only carries offers, answers and ICE candidates,
 * end-to-end encrypted like text.
 *
 * Rules:
 * - An offer rings every device of the callee until `ringUntilMs`, counted from the server's
 *   receive time, so a device that comes online after the ring ended never rings (the server
 *   also stops delivering it then: the offer is sent with that TTL).
 * - The first device to answer or decline tells the caller and, by a sync copy, its siblings,
 *   which stop ringing ("answered elsewhere", "declined elsewhere").
 * - A device with a call in progress answers a new offer "busy" by itself.
 * - After an answer, signals name the one device at the other end; others are ignored.
 */

import type { CallMedia, CallSignal, Content, IceCandidate } from "./content.ts";

export type CallState = "ringing" | "active" | "ended";

export type CallEndReason =
  /** We hung up (or cancelled / declined: see direction and whether it was answered). */
  | "hung-up"
  | "remote-hung-up"
  /** The callee declined / was busy. */
  | "declined"
  | "busy"
  /** The caller gave up before we answered. */
  | "cancelled"
  /** Nobody answered in time (caller side) / we did not (callee side). */
  | "no-answer"
  | "missed"
  | "answered-elsewhere"
  | "declined-elsewhere";

export interface CallInfo {
  id: string;
  /** The other account. */
  peer: string;
  direction: "in" | "out";
  media: CallMedia;
  state: CallState;
  /** The device at the other end, once known (the caller's; the one that answered). */
  peerDevice?: string;
  startedAtMs: number;
  ringUntilMs: number;
  answeredAtMs?: number;
  endedAtMs?: number;
  endReason?: CallEndReason;
}

export type CallEvent =
  | { type: "call-incoming"; call: CallInfo; sdp: string }
  | { type: "call-answered"; call: CallInfo; sdp: string }
  | { type: "call-ice"; call: CallInfo; candidates: IceCandidate[] }
  | { type: "call-ended"; call: CallInfo };

/** A signal to send: an E2EE message to `peer`'s devices, with a sync copy when given. */
export interface CallSend {
  peer: string;
  content: Content;
  syncContent?: Content;
  /** ICE and hang-up: to open streams only, never stored. */
  ephemeral: boolean;
  /** Seconds the server keeps it deliverable (durable signals only). */
  ttlSeconds?: number;
  /** Wakes the callee's devices with an urgent push (offers). */
  urgent: boolean;
}

export interface CallOutcome {
  events: CallEvent[];
  sends: CallSend[];
}

/** Ended calls remembered, so late or repeated signals for them do nothing. */
const ENDED_KEPT = 64;
/** Calls with unknown ids whose early ICE candidates are held, and for how long. */
const EARLY_ICE_CALLS = 16;
const EARLY_ICE_MS = 60_000;
const EARLY_ICE_PER_CALL = 64;

interface Sender {
  accountId: string;
  deviceId: string;
}

export class CallBook {
  readonly #calls = new Map<string, CallInfo>();
  readonly #earlyIce = new Map<string, { from: Sender; atMs: number; list: IceCandidate[] }>();

  constructor(private readonly me: { accountId: string; deviceId: string }) {}

  get(id: string): CallInfo | undefined {
    const call = this.#calls.get(id);
    return call && { ...call };
  }

  /** Calls not ended, oldest first. */
  live(): CallInfo[] {
    return [...this.#calls.values()].filter((c) => c.state !== "ended").map((c) => ({ ...c }));
  }

  /** The earliest ring deadline of a ringing call: when `expire` has work. */
  nextDeadline(): number | undefined {
    let next: number | undefined;
    for (const call of this.#calls.values()) {
      if (call.state === "ringing" && (next === undefined || call.ringUntilMs < next)) {
        next = call.ringUntilMs;
      }
    }
    return next;
  }

  /** A new outgoing call: rings all of `peer`'s devices. */
  startOutgoing(
    input: { id: string; peer: string; media: CallMedia; sdp: string; ringMs: number },
    nowMs: number,
  ): { call: CallInfo; send: CallSend } {
    if (input.peer === this.me.accountId) throw new Error("a call needs another account");
    if (this.#calls.has(input.id)) throw new Error(`call ${input.id} exists`);
    const call: CallInfo = {
      id: input.id,
      peer: input.peer,
      direction: "out",
      media: input.media,
      state: "ringing",
      startedAtMs: nowMs,
      ringUntilMs: nowMs + input.ringMs,
    };
    this.#remember(call);
    return {
      call: { ...call },
      send: {
        peer: input.peer,
        content: signal(call, {
          op: "offer",
          media: input.media,
          sdp: input.sdp,
          ringMs: input.ringMs,
        }),
        ephemeral: false,
        ttlSeconds: Math.ceil(input.ringMs / 1000),
        urgent: true,
      },
    };
  }

  /** Answers a ringing incoming call on this device; the caller gets our SDP answer. */
  answer(id: string, sdp: string, nowMs: number): { call: CallInfo; send: CallSend } {
    const call = this.#ringingIn(id);
    call.state = "active";
    call.answeredAtMs = nowMs;
    return {
      call: { ...call },
      send: {
        peer: call.peer,
        content: signal(call, { op: "answer", sdp, device: call.peerDevice! }),
        syncContent: signal(call, { op: "handled", how: "answered" }),
        ephemeral: false,
        ttlSeconds: remainingSeconds(call, nowMs),
        urgent: false,
      },
    };
  }

  /** Ends a call from this side: cancel (ringing out), decline (ringing in), or hang up. */
  end(id: string, nowMs: number): { call: CallInfo; send: CallSend | undefined } {
    const call = this.#calls.get(id);
    if (!call) throw new Error(`no call ${id}`);
    if (call.state === "ended") return { call: { ...call }, send: undefined };
    let send: CallSend;
    if (call.state === "ringing" && call.direction === "out") {
      send = cancelOf(call, nowMs);
    } else if (call.state === "ringing") {
      send = {
        peer: call.peer,
        content: signal(call, { op: "reject", reason: "declined", device: call.peerDevice! }),
        syncContent: signal(call, { op: "handled", how: "declined" }),
        ephemeral: false,
        ttlSeconds: remainingSeconds(call, nowMs),
        urgent: false,
      };
    } else {
      send = {
        peer: call.peer,
        content: signal(call, { op: "hangup", device: call.peerDevice! }),
        ephemeral: true,
        urgent: false,
      };
    }
    this.#finish(call, "hung-up", nowMs);
    return { call: { ...call }, send };
  }

  /** Our ICE candidates for the device at the other end (all the callee's while ringing). */
  ice(id: string, candidates: IceCandidate[]): CallSend {
    const call = this.#calls.get(id);
    if (!call || call.state === "ended") throw new Error(`call ${id} is not in progress`);
    return {
      peer: call.peer,
      content: signal(call, {
        op: "ice",
        candidates,
        ...(call.peerDevice ? { device: call.peerDevice } : {}),
      }),
      ephemeral: true,
      urgent: false,
    };
  }

  /** A call signal arrived from `from`, accepted by the server at `serverTimestampMs`. */
  receive(
    from: Sender,
    serverTimestampMs: number,
    callId: string,
    s: CallSignal,
    nowMs: number,
  ): CallOutcome {
    const out: CallOutcome = { events: [], sends: [] };
    const call = this.#calls.get(callId);
    if (from.accountId === this.me.accountId) {
      // Only our siblings' "handled" matters: one of them took the call.
      if (s.op === "handled" && call?.direction === "in" && call.state === "ringing") {
        const reason = s.how === "answered"
          ? "answered-elsewhere"
          : s.how === "declined"
          ? "declined-elsewhere"
          : "busy";
        this.#finish(call, reason, nowMs);
        out.events.push({ type: "call-ended", call: { ...call } });
      }
      return out;
    }
    if (s.op === "offer") {
      if (call) return out; // a repeat
      this.#incoming(from, serverTimestampMs, callId, s, nowMs, out);
      return out;
    }
    if (!call) {
      if (s.op === "ice") this.#holdEarlyIce(from, callId, s.candidates, nowMs);
      return out;
    }
    if (call.peer !== from.accountId || call.state === "ended") return out;
    // Once a call has two ends, only the device at the other end speaks for it.
    if (call.peerDevice !== undefined && call.peerDevice !== from.deviceId) return out;
    const forUs = (device: string | undefined) =>
      device === undefined || device === this.me.deviceId;
    switch (s.op) {
      case "answer":
        if (call.direction !== "out" || call.state !== "ringing" || !forUs(s.device)) return out;
        call.state = "active";
        call.peerDevice = from.deviceId;
        call.answeredAtMs = nowMs;
        out.events.push({ type: "call-answered", call: { ...call }, sdp: s.sdp });
        return out;
      case "reject":
        if (call.direction !== "out" || call.state !== "ringing" || !forUs(s.device)) return out;
        this.#finish(call, s.reason, nowMs);
        out.events.push({ type: "call-ended", call: { ...call } });
        return out;
      case "cancel":
        if (call.direction !== "in" || call.state !== "ringing") return out;
        this.#finish(call, "cancelled", nowMs);
        out.events.push({ type: "call-ended", call: { ...call } });
        return out;
      case "hangup":
        if (!forUs(s.device)) return out;
        this.#finish(call, call.state === "ringing" ? "cancelled" : "remote-hung-up", nowMs);
        out.events.push({ type: "call-ended", call: { ...call } });
        return out;
      case "ice":
        if (!forUs(s.device)) return out;
        out.events.push({ type: "call-ice", call: { ...call }, candidates: s.candidates });
        return out;
      case "handled":
        return out;
    }
  }

  /** Ends rings whose time ran out: the caller cancels ("no-answer"), the callee missed it. */
  expire(nowMs: number): CallOutcome {
    const out: CallOutcome = { events: [], sends: [] };
    for (const call of this.#calls.values()) {
      if (call.state !== "ringing" || call.ringUntilMs > nowMs) continue;
      if (call.direction === "out") out.sends.push(cancelOf(call, nowMs));
      this.#finish(call, call.direction === "out" ? "no-answer" : "missed", nowMs);
      out.events.push({ type: "call-ended", call: { ...call } });
    }
    for (const [id, held] of this.#earlyIce) {
      if (nowMs - held.atMs > EARLY_ICE_MS) this.#earlyIce.delete(id);
    }
    return out;
  }

  #incoming(
    from: Sender,
    serverTimestampMs: number,
    id: string,
    offer: Extract<CallSignal, { op: "offer" }>,
    nowMs: number,
    out: CallOutcome,
  ): void {
    const call: CallInfo = {
      id,
      peer: from.accountId,
      direction: "in",
      media: offer.media,
      state: "ringing",
      peerDevice: from.deviceId,
      startedAtMs: serverTimestampMs,
      ringUntilMs: serverTimestampMs + offer.ringMs,
    };
    this.#remember(call);
    const early = this.#earlyIce.get(id);
    this.#earlyIce.delete(id);
    if (call.ringUntilMs <= nowMs) {
      // The ring ended before this device heard of it: a missed call, never a ring.
      this.#finish(call, "missed", nowMs);
      out.events.push({ type: "call-ended", call: { ...call } });
      return;
    }
    if (this.live().some((other) => other.id !== id)) {
      this.#finish(call, "busy", nowMs);
      out.sends.push({
        peer: call.peer,
        content: signal(call, { op: "reject", reason: "busy", device: from.deviceId }),
        syncContent: signal(call, { op: "handled", how: "busy" }),
        ephemeral: false,
        ttlSeconds: remainingSeconds(call, nowMs),
        urgent: false,
      });
      out.events.push({ type: "call-ended", call: { ...call } });
      return;
    }
    out.events.push({ type: "call-incoming", call: { ...call }, sdp: offer.sdp });
    if (early && early.from.accountId === from.accountId && early.from.deviceId === from.deviceId) {
      out.events.push({ type: "call-ice", call: { ...call }, candidates: early.list });
    }
  }

  #holdEarlyIce(from: Sender, id: string, candidates: IceCandidate[], nowMs: number): void {
    const held = this.#earlyIce.get(id);
    if (held) {
      if (held.from.deviceId !== from.deviceId || held.from.accountId !== from.accountId) return;
      held.list.push(...candidates.slice(0, EARLY_ICE_PER_CALL - held.list.length));
      return;
    }
    if (this.#earlyIce.size >= EARLY_ICE_CALLS) return;
    this.#earlyIce.set(id, {
      from,
      atMs: nowMs,
      list: candidates.slice(0, EARLY_ICE_PER_CALL),
    });
  }

  #ringingIn(id: string): CallInfo {
    const call = this.#calls.get(id);
    if (!call || call.direction !== "in" || call.state !== "ringing") {
      throw new Error(`call ${id} is not ringing here`);
    }
    return call;
  }

  #finish(call: CallInfo, reason: CallEndReason, nowMs: number): void {
    call.state = "ended";
    call.endReason = reason;
    call.endedAtMs = nowMs;
  }

  /** Adds a call, forgetting the oldest ended ones beyond what is kept. */
  #remember(call: CallInfo): void {
    this.#calls.set(call.id, call);
    const ended = [...this.#calls.values()].filter((c) => c.state === "ended");
    for (const old of ended.slice(0, Math.max(0, ended.length - ENDED_KEPT))) {
      this.#calls.delete(old.id);
    }
  }
}

function signal(call: CallInfo, s: CallSignal): Content {
  return { kind: "call", call: call.id, signal: s };
}

function cancelOf(call: CallInfo, nowMs: number): CallSend {
  return {
    peer: call.peer,
    content: signal(call, { op: "cancel" }),
    ephemeral: false,
    ttlSeconds: remainingSeconds(call, nowMs),
    urgent: false,
  };
}

/** What is left of the ring, at least a second: a late signal is worthless after it. */
function remainingSeconds(call: CallInfo, nowMs: number): number {
  return Math.max(1, Math.ceil((call.ringUntilMs - nowMs) / 1000));
}
