/**
 * Maps the tool-code frames of an error stack (`at fn (tool:name@3:12:7)`) back to the sources of a
 * bundled tool through its source map (v3), so an error points at the TypeScript line. Runs on the
 * host, on failures only; a map that does not parse leaves the frames as they are.
 */

type Segment = { col: number; source: number; line: number; srcCol: number };
type Parsed = { sources: string[]; lines: Segment[][] };

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const parsedMaps = new Map<string, Parsed | null>();
/** Parsed maps kept per process; tools are few and their versions immutable. */
const MAX_PARSED = 64;

function parse(map: string): Parsed | null {
  const cached = parsedMaps.get(map);
  if (cached !== undefined) return cached;
  let parsed: Parsed | null = null;
  try {
    const raw = JSON.parse(map) as { sources?: unknown; mappings?: unknown };
    if (Array.isArray(raw.sources) && typeof raw.mappings === 'string') {
      parsed = { sources: raw.sources.map(String), lines: decodeMappings(raw.mappings) };
    }
  } catch {
    parsed = null;
  }
  if (parsedMaps.size >= MAX_PARSED) parsedMaps.delete(parsedMaps.keys().next().value!);
  parsedMaps.set(map, parsed);
  return parsed;
}

function decodeMappings(mappings: string): Segment[][] {
  const lines: Segment[][] = [];
  let source = 0;
  let line = 0;
  let srcCol = 0;
  for (const text of mappings.split(';')) {
    const segments: Segment[] = [];
    let col = 0;
    for (const seg of text.split(',')) {
      if (seg === '') continue;
      const v = decodeVlq(seg);
      col += v[0] ?? 0;
      if (v.length >= 4) {
        source += v[1]!;
        line += v[2]!;
        srcCol += v[3]!;
        segments.push({ col, source, line, srcCol });
      }
    }
    lines.push(segments);
  }
  return lines;
}

function decodeVlq(seg: string): number[] {
  const out: number[] = [];
  let value = 0;
  let shift = 0;
  for (const ch of seg) {
    const digit = B64.indexOf(ch);
    if (digit < 0) break;
    value += (digit & 31) << shift;
    if (digit & 32) shift += 5;
    else {
      out.push(value & 1 ? -(value >>> 1) : value >>> 1);
      value = 0;
      shift = 0;
    }
  }
  return out;
}

/** The source position of generated `line` and `col` (both 1-based), or undefined. */
export function originalPosition(map: string, line: number, col: number): { source: string; line: number; col: number } | undefined {
  const parsed = parse(map);
  const segments = parsed?.lines[line - 1];
  if (!parsed || !segments || segments.length === 0) return undefined;
  let best: Segment | undefined;
  for (const s of segments) {
    if (s.col <= col - 1) best = s;
    else break;
  }
  best ??= segments[0]!;
  const source = parsed.sources[best.source];
  return source === undefined ? undefined : { source, line: best.line + 1, col: best.srcCol + 1 };
}

/**
 * Rewrites `tool:<key>:line:col` positions in `stack` through `map`: to the sources the map names, or
 * with `keepFile`, to positions in the same `tool:<key>` file — how a module factory's positions
 * (`module-factory.ts`) become positions in the tool's code, as if the module itself had run, ready
 * for a second pass with the tool's own source map.
 */
export function mapStack(stack: string, map: string, keepFile = false): string {
  return stack.replace(/(tool:[^\s():]+):(\d+):(\d+)/g, (whole, file: string, l: string, c: string) => {
    const pos = originalPosition(map, Number(l), Number(c));
    return pos ? `${keepFile ? file : pos.source}:${pos.line}:${pos.col}` : whole;
  });
}
