import { isCallErrorCode, toPublicFailure, type PublicFailure } from '@toolplane/core';

/**
 * A failed call's error travels as the BullMQ failed reason, `CODE: message`, readable as is in the
 * queue UI and parsed back here. Retryability is not written: it follows from the code.
 */
export function encodeFailure(err: PublicFailure): string {
  return `${err.code}: ${err.message}`;
}

/**
 * The public failure of a failed job from its failed reason. A reason that is not `CODE: message`
 * with a public call code is BullMQ's own (a lost lock, say): the platform's failure, `SANDBOX_ERROR`.
 */
export function decodeFailure(reason: string | undefined): PublicFailure {
  if (reason !== undefined && isStalledTooOften(reason)) {
    return toPublicFailure({ code: 'POISONED', message: 'the call stalled or crashed the workers that ran it twice; it is not handed to a third' });
  }
  const m = /^([A-Z_]+): ([\s\S]*)$/.exec(reason ?? '');
  if (m && isCallErrorCode(m[1])) return toPublicFailure({ code: m[1], message: m[2] || m[1] });
  return toPublicFailure(reason || 'unknown failure');
}

/** BullMQ's failed reason for a job that stalled more than `maxStalledCount` times. */
export function isStalledTooOften(reason: string): boolean {
  return reason === 'job stalled more than allowable limit';
}
