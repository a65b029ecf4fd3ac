import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ApiError, PlannerApi } from './api.js';
import { CliError } from './commands/cli-error.js';
import { call, calls, parseCallArgs, remove, rollback, versions } from './commands/registry.js';
import { createOutput, type Output } from './output.js';

// The bundler, esbuild and the sandbox (isolated-vm) load only for the commands that build: a
// `call` or `versions` starts in a fraction of the time.
let loaded = false;
const building = () => {
  loaded = true;
  return import('./building.js');
};

export const USAGE = `toolplane — write, test and deploy Toolplane tools

usage: toolplane <command> [options]

  init DIR                       a new project: package.json, tsconfig.json, tools/hello.ts and its test
  dev                            register tools/, then rebuild and re-register on every save; prints each call's logs
  deploy                         bundle every tool in tools/ and register those that changed (name@version)
  test [FILTER…]                 run the project's tool tests in a local sandbox (no Redis, no planner)
  call NAME [k=v … | --args JSON] call a tool and print its result (exit 1 with the error code if it fails)
  calls NAME [--limit N]         recent calls of a tool: status, attempts, timings
  versions NAME                  versions of a tool
  rollback NAME --to N           serve version N's code again (as a new version)
  rm NAME                        remove a tool

options:
  --url URL       planner (default $TOOLPLANE_URL, else http://127.0.0.1:8080)
  --key KEY       API key (default $TOOLPLANE_KEY)
  --cwd DIR       project directory (default the current one)
  --json          machine-readable output on stdout
  --wait MS       call: how long to wait for the result (default 30000)
`;

const OPTIONS = {
  url: { type: 'string' },
  key: { type: 'string' },
  cwd: { type: 'string' },
  json: { type: 'boolean', default: false },
  args: { type: 'string' },
  to: { type: 'string' },
  limit: { type: 'string' },
  wait: { type: 'string' },
  force: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** Runs one command line; returns the exit code. Never throws. */
export async function main(argv: string[], env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<number> {
  let out: Output = createOutput(argv.includes('--json'));
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    } catch (err: unknown) {
      throw new CliError('USAGE', `${(err as Error).message}\n\n${USAGE}`, 2);
    }
    const { values: o, positionals } = parsed;
    out = createOutput(o.json);
    const [command, ...rest] = positionals;
    if (o.help || !command || command === 'help') {
      out.result(USAGE, { usage: USAGE });
      return command || o.help ? 0 : 2;
    }
    const root = resolve(o.cwd ?? process.cwd());
    const api = () => new PlannerApi({ url: o.url ?? env.TOOLPLANE_URL ?? 'http://127.0.0.1:8080', ...(o.key ?? env.TOOLPLANE_KEY ? { key: o.key ?? env.TOOLPLANE_KEY } : {}) });
    const name = () => {
      if (!rest[0]) throw new CliError('USAGE', `say which tool: toolplane ${command} NAME`, 2);
      return rest[0];
    };
    switch (command) {
      case 'init':
        (await import('./commands/init.js')).init(root, out, rest[0], o.force);
        break;
      case 'deploy':
        await (await building()).deploy(root, api(), out);
        break;
      case 'dev':
        await (await building()).dev(root, api(), out, signal);
        break;
      case 'test':
        await (await import('./commands/test.js')).test(root, out, rest);
        break;
      case 'call':
        await call(api(), out, name(), parseCallArgs(o.args, rest.slice(1)), positiveInt(o.wait, '--wait', 30_000));
        break;
      case 'calls':
        await calls(api(), out, name(), positiveInt(o.limit, '--limit', 20));
        break;
      case 'versions':
        await versions(api(), out, name());
        break;
      case 'rollback':
        if (o.to === undefined) throw new CliError('USAGE', `say which version: toolplane rollback ${rest[0] ?? 'NAME'} --to N (see \`toolplane versions ${rest[0] ?? 'NAME'}\`)`, 2);
        await rollback(api(), out, name(), positiveInt(o.to, '--to', 1));
        break;
      case 'rm':
        await remove(api(), out, name());
        break;
      default:
        throw new CliError('USAGE', `unknown command '${command}'\n\n${USAGE}`, 2);
    }
    return 0;
  } catch (err: unknown) {
    const { code, message, exitCode } = explain(err);
    // Scripts read `--json` failures as the API shapes them.
    out.error(out.json ? JSON.stringify({ error: { code, message } }) : `error ${code}: ${message}`);
    return exitCode;
  } finally {
    if (loaded) await (await building()).closeLocalSandbox();
  }
}

function positiveInt(raw: string | undefined, flag: string, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new CliError('USAGE', `${flag} takes a positive whole number, got '${raw}'`, 2);
  return n;
}

/** Every failure as a code, a message that says what to do next, and an exit code. */
function explain(err: unknown): { code: string; message: string; exitCode: number } {
  if (err instanceof CliError) return { code: err.code, message: err.message, exitCode: err.exitCode };
  if (err instanceof Error && err.name === 'BundleError') return { code: 'BUILD_FAILED', message: err.message, exitCode: 1 };
  if (err instanceof ApiError) return { code: err.code, message: `${err.message}${hint(err)}`, exitCode: 1 };
  return { code: 'INTERNAL', message: err instanceof Error ? (err.stack ?? err.message) : String(err), exitCode: 1 };
}

function hint(err: ApiError): string {
  switch (err.code) {
    case 'UNAUTHORIZED':
      return ' — set TOOLPLANE_KEY (or --key) to an API key; `make up` prints the admin key';
    case 'FORBIDDEN':
      return ' — this key lacks the scope or the tool belongs to another tenant';
    case 'TOOL_NOT_FOUND':
      return ' — `toolplane deploy` registers the tools of this project';
    case 'INVALID_ARGUMENTS':
      return err.details ? ` — ${JSON.stringify(err.details)}` : '';
    default:
      return err.details ? ` (${JSON.stringify(err.details).slice(0, 500)})` : '';
  }
}
