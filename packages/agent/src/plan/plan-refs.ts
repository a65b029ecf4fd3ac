/**
 * References between plan steps: inside a step's `arguments`, `{"$ref": "s1"}` stands for step s1's
 * result and `{"$ref": "s1", "path": "a.b.0"}` for a part of it (object keys and array indexes,
 * separated by dots). A reference may sit anywhere, at any depth; it replaces the whole value there.
 */

/** Arguments nested deeper than this are refused: the model's JSON is walked recursively. */
export const MAX_ARGUMENT_DEPTH = 64;

/** One reference found in a step's arguments. */
export type PlanRef = {
  /** The referenced step. */
  step: string;
  path?: string;
  /** Where the reference sits, as a JSON pointer into the arguments (`""` for the whole value). */
  pointer: string;
};

type RefObject = { $ref: string; path?: string };

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** True for an object with a `$ref` key, well formed or not. */
function hasRefKey(v: unknown): v is Record<string, unknown> {
  return isPlainObject(v) && Object.hasOwn(v, '$ref');
}

/** `{"$ref": string, "path"?: string}` and nothing else. */
function isRefObject(v: Record<string, unknown>): v is RefObject {
  const keys = Object.keys(v);
  return (
    typeof v.$ref === 'string' &&
    keys.every((k) => k === '$ref' || k === 'path') &&
    (v.path === undefined || typeof v.path === 'string')
  );
}

const escapePointer = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');

/** Every reference in `args`, and what is wrong with the ones that are malformed. */
export function findRefs(args: unknown): { refs: PlanRef[]; problems: string[] } {
  const refs: PlanRef[] = [];
  const problems: string[] = [];
  const walk = (v: unknown, pointer: string, depth: number): void => {
    if (depth > MAX_ARGUMENT_DEPTH) return void problems.push(`arguments are nested deeper than ${MAX_ARGUMENT_DEPTH} levels`);
    if (hasRefKey(v)) {
      if (!isRefObject(v)) {
        return void problems.push(
          `the reference at '${pointer || '/'}' is malformed: write {"$ref": "<step id>"} or {"$ref": "<step id>", "path": "a.b"}`,
        );
      }
      return void refs.push({ step: v.$ref, ...(v.path !== undefined ? { path: v.path } : {}), pointer });
    }
    if (Array.isArray(v)) v.forEach((item, i) => walk(item, `${pointer}/${i}`, depth + 1));
    else if (isPlainObject(v)) for (const [k, item] of Object.entries(v)) walk(item, `${pointer}/${escapePointer(k)}`, depth + 1);
  };
  walk(args, '', 0);
  return { refs, problems };
}

/** The part of `value` at a dotted `path` (own keys and array indexes only); `found: false` when absent. */
export function readPath(value: unknown, path: string | undefined): { found: true; value: unknown } | { found: false } {
  if (path === undefined || path === '') return { found: true, value };
  let current = value;
  for (const part of path.split('.')) {
    if (Array.isArray(current) && /^\d+$/.test(part) && Number(part) < current.length) current = current[Number(part)];
    else if (isPlainObject(current) && Object.hasOwn(current, part)) current = current[part];
    else return { found: false };
  }
  return { found: true, value: current };
}

/**
 * A copy of `args` with every reference replaced by the referenced result (or the part of it at
 * `path`). `results` gives a succeeded step's result; a path that is not in it is a problem.
 */
export function fillRefs(
  args: unknown,
  results: (step: string) => unknown,
): { ok: true; value: unknown } | { ok: false; problem: string } {
  let problem: string | undefined;
  const fill = (v: unknown): unknown => {
    if (problem !== undefined) return undefined;
    if (hasRefKey(v) && isRefObject(v)) {
      const read = readPath(results(v.$ref), v.path);
      if (!read.found) {
        problem = `the result of step '${v.$ref}' has nothing at path '${v.path}'`;
        return undefined;
      }
      return read.value;
    }
    if (Array.isArray(v)) return v.map(fill);
    if (isPlainObject(v)) return Object.fromEntries(Object.entries(v).map(([k, item]) => [k, fill(item)]));
    return v;
  };
  const value = fill(args);
  return problem === undefined ? { ok: true, value } : { ok: false, problem };
}

/** A copy of `args` with every reference replaced by `placeholder`, for checking the rest against a schema. */
export function blankRefs(args: unknown, placeholder: unknown = null): unknown {
  const blank = (v: unknown): unknown => {
    if (hasRefKey(v)) return placeholder;
    if (Array.isArray(v)) return v.map(blank);
    if (isPlainObject(v)) return Object.fromEntries(Object.entries(v).map(([k, item]) => [k, blank(item)]));
    return v;
  };
  return blank(args);
}
