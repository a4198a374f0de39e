/** What an acknowledgement may hold, the same on Receive's Ack and on Acknowledge. */

/** Envelope ids per acknowledgement (the contract's bound). */
export const ACK_IDS_MAX = 500;
const ENVELOPE_ID_MAX_CHARS = 64;

/** Why a list of envelope ids is not a valid acknowledgement, or undefined. */
export function ackIdsProblem(ids: readonly string[]): string | undefined {
  if (ids.length === 0 || ids.length > ACK_IDS_MAX) {
    return `an acknowledgement holds 1..${ACK_IDS_MAX} envelope ids`;
  }
  for (const id of ids) {
    if (id.length === 0 || id.length > ENVELOPE_ID_MAX_CHARS) {
      return `envelope ids are 1..${ENVELOPE_ID_MAX_CHARS} chars`;
    }
  }
  return undefined;
}
