/** A failure the CLI reports as `error CODE: message` and exits non-zero on; the message says what to do next. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    readonly code: string,
    message: string,
    /** @default 1 */
    readonly exitCode = 1,
  ) {
    super(message);
  }
}
