import type { RequestErrorCode } from '@toolplane/core';

/**
 * A code the API answers with: one of the stable request codes, or a code this client version does
 * not know yet (codes are added over time, never renamed). `NETWORK_ERROR` means no answer came.
 */
export type ToolplaneErrorCode = RequestErrorCode | 'NETWORK_ERROR' | (string & {});

/** A request the API refused or could not serve: its HTTP status and the stable `code` of its body. */
export class ToolplaneError extends Error {
  override readonly name = 'ToolplaneError';
  constructor(
    readonly code: ToolplaneErrorCode,
    message: string,
    /** The HTTP status; 0 when no answer came. */
    readonly status: number,
    readonly details?: unknown,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isToolplaneError(err: unknown): err is ToolplaneError {
  return err instanceof ToolplaneError;
}
