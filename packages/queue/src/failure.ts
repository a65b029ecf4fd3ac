import type { SerializedError } from '@toolplane/core';

/**
 * A failed call's error travels as the BullMQ failed reason, `CODE: message`, readable as is in the
 * queue UI and parsed back here.
 */
export function encodeFailure(err: SerializedError): string {
  return `${err.code}: ${err.message}`;
}

export function decodeFailure(reason: string | undefined): SerializedError {
  const m = /^([A-Z_]+): ([\s\S]*)$/.exec(reason ?? '');
  if (m) return { code: m[1]!, message: m[2]! };
  return { code: 'SANDBOX_ERROR', message: reason || 'unknown failure' };
}
