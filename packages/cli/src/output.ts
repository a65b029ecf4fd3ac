/**
 * What the CLI writes: results on stdout (JSON with `--json`), progress and errors on stderr, so
 * `toolplane call add a=1 b=2 --json | jq` sees only the answer.
 */
export type Output = {
  readonly json: boolean;
  /** A result: text for people, or the value as JSON with `--json`. */
  result(text: string, value: unknown): void;
  /** Progress and notes (stderr); silent with `--json`. */
  progress(text: string): void;
  /** A failure (stderr), always shown. */
  error(text: string): void;
};

export function createOutput(json: boolean, out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Output {
  return {
    json,
    result: (text, value) => void out.write(json ? `${JSON.stringify(value)}\n` : text.endsWith('\n') ? text : `${text}\n`),
    progress: (text) => {
      if (!json) err.write(`${text}\n`);
    },
    error: (text) => void err.write(`${text}\n`),
  };
}

/** Rows as aligned columns. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}
