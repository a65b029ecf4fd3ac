import type { SerializedError } from '@toolplane/core';

/**
 * A failed call's error travels as the BullMQ failed reason, `CODE: message`, readable as is in the
 * queue UI and parsed back here.
 */
export function encodeFailure(err: SerializedError): string {
  return `${err.code}: ${err.message}`;
}

export function decodeFailure(reason: string | undefined): SerializedError {
  if (reason !== undefined && isStalledTooOften(reason)) {
    return { code: 'POISONED', message: 'the call stalled or crashed the workers that ran it twice; it is not handed to a third' };
  }
  const m = /^([A-Z_]+): ([\s\S]*)$/.exec(reason ?? '');
  if (m) return { code: m[1]!, message: m[2]! };
  return { code: 'SANDBOX_ERROR', message: reason || 'unknown failure' };
}

/** BullMQ's failed reason for a job that stalled more than `maxStalledCount` times. */
export function isStalledTooOften(reason: string): boolean {
  return reason === 'job stalled more than allowable limit';
}
