/**
 * The container image, built from the real Dockerfile and run, without a Docker engine: buildah
 * builds it (`scripts/image.sh`, what `make image` runs) and starts the planner and a worker from it
 * with `buildah run --isolation chroot` (host network) against the run's Redis. Where Docker Hub
 * cannot be reached the base is the local stand-in of `scripts/image-base-standin.sh`.
 *
 * Measured figures (image size, build and start-up times) are printed and written to
 * `.cache/image/measured.json`; the README quotes them.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { validate } from 'dockerfile-utils';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { parse } from 'yaml';
import { freePort } from '@toolplane/queue/testing';
import { ADD_TOOL, api, eventually, ROOT, uniquePrefix } from '../support/services.js';

const run = promisify(execFile);
const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
// `make bootstrap` installs buildah; without it this suite fails, it is never skipped.
const HAS_BUILDAH = spawnSync('buildah', ['--version']).status === 0;
const ADMIN_KEY = 'k'.repeat(32);

/** The Dockerfile's instructions, continuation lines joined, comments and the parser directive dropped. */
function instructions(text: string): Array<{ op: string; args: string }> {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      return { op: op!.toUpperCase(), args: rest.join(' ') };
    });
}

describe('Dockerfile lint', () => {
  test('dockerfile-utils (the VS Code Docker linter) reports nothing, with every optional rule as an error', () => {
    const diagnostics = validate(DOCKERFILE, {
      deprecatedMaintainer: 2,
      directiveCasing: 2,
      emptyContinuationLine: 2,
      instructionCasing: 2,
      instructionCmdMultiple: 2,
      instructionEntrypointMultiple: 2,
      instructionHealthcheckMultiple: 2,
      instructionJSONInSingleQuotes: 2,
      instructionWorkdirRelative: 2,
    });
    expect(diagnostics.map((d) => `line ${d.range.start.line + 1}: ${d.message}`)).toEqual([]);
  });

  test("hadolint's rules that apply here: exec form, pipefail, clean apt installs, no cd, a numeric non-root user", () => {
    const all = instructions(DOCKERFILE);
    const stages = all.filter((i) => i.op === 'FROM');
    expect(stages.length).toBeGreaterThanOrEqual(2);
    // The base is a build argument defaulting to the official Node 24 image (DL3006/DL3007: a tag, not latest).
    expect(all.find((i) => i.op === 'ARG')?.args).toMatch(/^NODE_IMAGE=docker\.io\/library\/node:24(-[a-z]+)*$/);
    for (const s of stages) expect(s.args).toMatch(/^\$\{NODE_IMAGE\}/);
    const final = all.slice(all.lastIndexOf(stages.at(-1)!));
    // DL3025: JSON form, so signals reach tini and node rather than a shell.
    for (const op of ['ENTRYPOINT', 'CMD']) expect(final.find((i) => i.op === op)?.args, op).toMatch(/^\[.*\]$/);
    expect(JSON.parse(final.find((i) => i.op === 'ENTRYPOINT')!.args)[0]).toMatch(/\/tini$/);
    expect(JSON.parse(final.find((i) => i.op === 'CMD')!.args).slice(0, 2)).toEqual(['node', '--no-node-snapshot']);
    // DL3002: the last USER is not root; numeric, so Kubernetes' runAsNonRoot can verify it.
    const user = final.filter((i) => i.op === 'USER').at(-1)?.args ?? 'root';
    expect(user).toMatch(/^[1-9]\d*(:\d+)?$/);
    expect(final.some((i) => i.op === 'HEALTHCHECK')).toBe(true);
    for (const key of ['title', 'version', 'revision', 'created', 'description']) expect(DOCKERFILE).toContain(`org.opencontainers.image.${key}=`);
    let pipefail = false;
    for (const i of all) {
      if (i.op === 'SHELL') pipefail = i.args.includes('pipefail');
      if (i.op === 'FROM') pipefail = false;
      if (i.op !== 'RUN') continue;
      // DL4006: a pipe needs pipefail, or a failed left side goes unnoticed.
      if (/[^|]\|[^|]/.test(i.args.replace(/'[^']*'/g, ''))) expect(pipefail, i.args).toBe(true);
      // DL3003: WORKDIR or --dir, never cd.
      expect(i.args, i.args).not.toMatch(/(^|&&|;)\s*cd\s/);
      // DL3015/DL3009/DL3014: no recommended packages, no prompts, no package lists left behind.
      if (/apt-get install/.test(i.args)) {
        expect(i.args).toMatch(/apt-get install -y --no-install-recommends/);
        expect(i.args).toMatch(/rm -rf \/var\/lib\/apt\/lists\/\*/);
      }
      // DL3016: npm packages pinned.
      for (const m of i.args.matchAll(/npm install[^&;]* "?([a-z@][^\s"]*)"?\s*($|&&|;)/g)) expect(m[1], i.args).toMatch(/@/);
    }
    // DL3020: COPY, not ADD.
    expect(all.filter((i) => i.op === 'ADD')).toEqual([]);
  });

  test('.dockerignore keeps node_modules, build output, .env and .git out of the build context', () => {
    const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    expect(ignore).toContain('*');
    expect(ignore).toContain('**/node_modules');
    expect(ignore).toContain('**/dist');
    expect(ignore.filter((l) => l.startsWith('!') && /env|\.git|node_modules|\.tools|\.data/.test(l))).toEqual([]);
  });
});

type ImageConfig = {
  User: string;
  WorkingDir: string;
  Entrypoint: string[];
  Cmd: string[];
  Env: string[];
  Labels: Record<string, string>;
  Healthcheck?: { Test: string[]; Interval: number; Timeout: number; Retries: number };
};

type Proc = { pid: number; ppid: number; uid: number; comm: string; cmdline: string };

/** Every process below `root` (not itself), read from /proc. */
function descendants(root: number): Proc[] {
  const all: Proc[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))![1]);
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
      all.push({ pid: Number(entry), ppid, uid, comm, cmdline });
    } catch {
      // gone meanwhile
    }
  }
  const out: Proc[] = [];
  const walk = (pid: number) => {
    for (const p of all.filter((q) => q.ppid === pid)) {
      out.push(p);
      walk(p.pid);
    }
  };
  walk(root);
  return out;
}

type Container = {
  name: string;
  url: string;
  proc: ChildProcess;
  startMs: number;
  output: () => string;
  /** The container's PID 1 in a real runtime: the image's entrypoint. */
  init: () => Proc;
  exited: Promise<number | null>;
};

describe(
  'container image, built with buildah and run',
  () => {
    test('buildah is installed (make bootstrap installs it)', () => {
      expect(HAS_BUILDAH).toBe(true);
    });

    const id = randomBytes(4).toString('hex');
    const tag = `localhost/toolplane:test-${id}`;
    const containers: string[] = [];
    const running: Container[] = [];
    const measured: Record<string, number | string> = {};
    let config: ImageConfig;
    let downstream: Server;
    const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };

    async function newContainer(suffix: string): Promise<string> {
      const name = `toolplane-test-${id}-${suffix}`;
      await run('buildah', ['from', '--pull=false', '--name', name, tag]);
      containers.push(name);
      return name;
    }

    /** Starts a service the way compose and Kubernetes do: the image's entrypoint, then `node --no-node-snapshot <main>`. */
    async function start(service: 'planner' | 'worker', vars: Record<string, string>): Promise<Container> {
      const name = await newContainer(service);
      const port = await freePort();
      const portVar = service === 'planner' ? 'PORT' : 'WORKER_METRICS_PORT';
      const all = { ...vars, [portVar]: String(port), LOG_LEVEL: 'warn', TINI_SUBREAPER: '1' };
      const envArgs = Object.entries(all).flatMap(([k, v]) => ['--env', `${k}=${v}`]);
      const argv = [...config.Entrypoint, 'node', '--no-node-snapshot', `services/${service}/dist/main.js`];
      const started = performance.now();
      const proc = spawn('buildah', ['run', '--isolation', 'chroot', ...envArgs, name, '--', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      proc.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
      proc.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
      const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
      const url = `http://127.0.0.1:${port}`;
      await eventually(async () => {
        if (proc.exitCode !== null) throw new Error(`${service} exited with ${proc.exitCode}:\n${out}`);
        return (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200 ? true : undefined;
      }, 60_000, 50).catch((err: unknown) => {
        throw new Error(`${service} from the image not ready: ${String(err)}\n${out}`);
      });
      const startMs = Math.round(performance.now() - started);
      const init = () => {
        const tini = descendants(proc.pid!).find((p) => p.comm === 'tini');
        if (!tini) throw new Error(`no tini below buildah run ${proc.pid}`);
        return tini;
      };
      const c: Container = { name, url, proc, startMs, output: () => out, init, exited };
      running.push(c);
      return c;
    }

    beforeAll(async () => {
      downstream = createServer((_req, res) => void setTimeout(() => res.end('ok'), 800)).listen(0, '127.0.0.1');
      // Built at the lowest CPU priority: the rest of the suite runs beside it and measures latencies.
      const started = performance.now();
      const build = spawn('nice', ['-n', '19', 'ionice', '-c', '2', '-n', '7', join(ROOT, 'scripts/image.sh'), tag], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let log = '';
      build.stdout.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-8_000)));
      build.stderr.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-8_000)));
      const code = await new Promise<number | null>((resolve) => build.once('exit', resolve));
      if (code !== 0) throw new Error(`scripts/image.sh exited ${code}:\n${log}`);
      measured.buildSeconds = Math.round((performance.now() - started) / 1000);
      const { stdout } = await run('buildah', ['inspect', '--type', 'image', tag], { maxBuffer: 16 << 20 });
      config = JSON.parse(stdout).Docker.config as ImageConfig;
      const { stdout: images } = await run('buildah', ['images', '--json', tag]);
      measured.size = (JSON.parse(images) as Array<{ size: string }>)[0]!.size;
      measured.base = config.Labels['org.opencontainers.image.base.name'] ?? '';
    }, 20 * 60_000);

    afterAll(async () => {
      // What is still running after a failure: killing `buildah run` alone would leave the container's
      // processes behind (they are not its process group), so they go first, tini and all below it.
      for (const c of running) {
        if (c.proc.exitCode !== null || c.proc.signalCode !== null) continue;
        for (const p of descendants(c.proc.pid!).reverse()) {
          try {
            process.kill(p.pid, 'SIGKILL');
          } catch {
            // gone already
          }
        }
        c.proc.kill('SIGKILL');
      }
      await Promise.all(running.map((c) => c.exited));
      for (const name of containers) await run('buildah', ['rm', name]).catch(() => undefined);
      await run('buildah', ['rmi', tag]).catch(() => undefined);
      await new Promise((r) => downstream?.close(r));
      mkdirSync(join(ROOT, '.cache/image'), { recursive: true });
      writeFileSync(join(ROOT, '.cache/image/measured.json'), JSON.stringify({ at: new Date().toISOString(), ...measured }, null, 2) + '\n');
      console.log(`image figures: ${JSON.stringify(measured)}`);
    }, 60_000);

    test('image config: runs as 1000 under tini, node --no-node-snapshot, a HEALTHCHECK, OCI labels', () => {
      expect(config.User).toBe('1000:1000');
      expect(config.WorkingDir).toBe('/app');
      expect(config.Entrypoint).toEqual(['/usr/bin/tini', '--']);
      expect(config.Cmd).toEqual(['node', '--no-node-snapshot', 'services/planner/dist/main.js']);
      expect(config.Env).toContain('NODE_ENV=production');
      expect(config.Healthcheck?.Test[0]).toBe('CMD');
      for (const key of ['title', 'description', 'version', 'revision', 'created', 'base.name']) {
        expect(config.Labels[`org.opencontainers.image.${key}`], key).toBeTruthy();
      }
      expect(config.Labels['org.opencontainers.image.revision']).not.toBe('unknown');
    });

    test('contents: a production install made inside the build, compiled output only, no compilers', async () => {
      const name = await newContainer('files');
      const { stdout } = await run('buildah', ['mount', name]);
      const fs = stdout.trim();
      try {
        // pnpm's record of the install: production only, and its store is the build's, not this host's.
        const modules = parse(readFileSync(join(fs, 'app/node_modules/.modules.yaml'), 'utf8'));
        expect(modules.included).toEqual({ dependencies: true, devDependencies: false, optionalDependencies: true });
        expect(modules.storeDir).toMatch(/^\/pnpm\/store\//);
        const pnpmDir = readdirSync(join(fs, 'app/node_modules/.pnpm'));
        for (const dev of ['vitest@', 'eslint@', 'turbo@', '@types+', 'prettier@', 'typescript-eslint@', 'playwright-core@']) {
          expect(pnpmDir.filter((d) => d.startsWith(dev)), dev).toEqual([]);
        }
        // isolated-vm loads its prebuilt binary: nothing in the image can compile.
        for (const tool of ['gcc', 'g++', 'cc', 'make', 'python3']) expect(existsSync(join(fs, 'usr/bin', tool)), tool).toBe(false);
        expect(existsSync(join(fs, 'usr/bin/tini'))).toBe(true);
        // The worker spawns process.execPath --no-node-snapshot packages/sandbox/dist/host/host-main.js.
        expect(existsSync(join(fs, 'app/packages/sandbox/dist/host/host-main.js'))).toBe(true);
        for (const dir of ['packages', 'services']) {
          for (const pkg of readdirSync(join(fs, 'app', dir))) {
            // node_modules only where the package has production dependencies (the console has none).
            expect(readdirSync(join(fs, 'app', dir, pkg)).filter((e) => e !== 'node_modules').sort(), `${dir}/${pkg}`).toEqual(['dist', 'package.json']);
          }
        }
        expect(existsSync(join(fs, 'app/test'))).toBe(false);
        expect(statSync(join(fs, 'app/.data')).uid).toBe(1000);
        expect(statSync(join(fs, 'app/services')).uid).toBe(0);
      } finally {
        await run('buildah', ['umount', name]);
      }
    });

    let planner: Container;
    let worker: Container;

    test('the planner and a worker start from the image, serve a call through the sandbox, and run as uid 1000', async () => {
      planner = await start('planner', { ...env, HOST: '127.0.0.1', TOOLPLANE_ADMIN_KEY: ADMIN_KEY });
      worker = await start('worker', { ...env, TOOL_DISCOVERY_INTERVAL_MS: '500', TOOLPLANE_ALLOW_PRIVATE_NETWORKS: '127.0.0.1' });
      measured.plannerStartMs = planner.startMs;
      measured.workerStartMs = worker.startMs;
      const auth = { authorization: `Bearer ${ADMIN_KEY}` };
      expect((await api(planner.url, 'GET', '/v1/tools')).status).toBe(401);
      expect((await api(planner.url, 'PUT', '/v1/tools/add', ADD_TOOL, auth)).status).toBe(201);
      const res = await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: { a: 2, b: 40 }, wait: 30_000 }, auth);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body).toMatchObject({ status: 'succeeded', result: 42 });
      for (const c of [planner, worker]) {
        const tini = c.init();
        expect(tini.uid, c.name).toBe(1000);
        const below = descendants(tini.pid);
        const node = below.find((p) => p.ppid === tini.pid);
        expect(node?.cmdline, c.name).toMatch(/^node --no-node-snapshot services\/(planner|worker)\/dist\/main\.js$/);
        // Every process of the service, sandbox hosts included, runs as 1000.
        expect(below.map((p) => p.uid)).toEqual(below.map(() => 1000));
      }
      const hosts = descendants(worker.init().pid).filter((p) => p.cmdline.includes('packages/sandbox/dist/host/host-main.js'));
      expect(hosts.length).toBeGreaterThanOrEqual(1);
      // The planner's embedded history went to the one writable directory, as uid 1000.
      const { stdout } = await run('buildah', ['mount', planner.name]);
      try {
        const file = join(stdout.trim(), 'app/.data', `history-${env.TOOLPLANE_PREFIX}.sqlite`);
        expect(statSync(file).uid).toBe(1000);
      } finally {
        await run('buildah', ['umount', planner.name]);
      }
    }, 120_000);

    test("the image's HEALTHCHECK passes against each running service and fails where nothing listens", async () => {
      const check = config.Healthcheck!.Test.slice(1);
      const name = await newContainer('health');
      const probe = async (vars: Record<string, string>) => {
        const envArgs = Object.entries(vars).flatMap(([k, v]) => ['--env', `${k}=${v}`]);
        return run('buildah', ['run', '--isolation', 'chroot', ...envArgs, name, '--', ...check]).then(
          () => 0,
          (err: { code?: number }) => err.code ?? -1,
        );
      };
      const closed = String(await freePort());
      expect(await probe({ PORT: new URL(planner.url).port, WORKER_METRICS_PORT: closed })).toBe(0);
      expect(await probe({ PORT: closed, WORKER_METRICS_PORT: new URL(worker.url).port })).toBe(0);
      expect(await probe({ PORT: closed, WORKER_METRICS_PORT: closed })).toBe(1);
    }, 60_000);

    test('SIGTERM to the entrypoint (what `docker stop` and Kubernetes send) drains: the held call finishes, both exit 0', async () => {
      const auth = { authorization: `Bearer ${ADMIN_KEY}` };
      const port = (downstream.address() as AddressInfo).port;
      const waiting = {
        description: 'waits 800 ms on a downstream',
        parameters: { type: 'object' },
        code: `export default async (a, ctx) => { await ctx.fetch('http://127.0.0.1:${port}/'); return 'done' }`,
        egress: [`127.0.0.1:${port}`],
        retries: { attempts: 1 },
      };
      expect((await api(planner.url, 'PUT', '/v1/tools/waiting', waiting, auth)).status).toBe(201);
      const { body } = await api(planner.url, 'POST', '/v1/calls', { tool: 'waiting', arguments: {} }, auth);
      await eventually(async () => ((await api(planner.url, 'GET', `/v1/calls/${body.id}`, undefined, auth)).body.status === 'running' ? true : undefined), 15_000, 20);
      const hosts = descendants(worker.init().pid).filter((p) => p.cmdline.includes('host-main.js'));
      expect(hosts.length).toBeGreaterThanOrEqual(1);
      process.kill(worker.init().pid, 'SIGTERM');
      // Draining: /readyz says so, and the signal reached node alone. The sandbox hosts (which exit on
      // SIGTERM) keep running the held call; `tini -g` would have killed them with it.
      await eventually(async () => ((await fetch(`${worker.url}/readyz`).catch(() => undefined))?.status === 503 ? true : undefined), 5_000, 10);
      await new Promise((r) => setTimeout(r, 100));
      for (const host of hosts) expect(existsSync(`/proc/${host.pid}`), `sandbox host ${host.pid}`).toBe(true);
      expect(await worker.exited, worker.output()).toBe(0);
      // The worker waited for the call it held before it exited.
      expect((await api(planner.url, 'GET', `/v1/calls/${body.id}`, undefined, auth)).body).toMatchObject({ status: 'succeeded', result: 'done', attempts: 1, starts: 1 });
      process.kill(planner.init().pid, 'SIGTERM');
      expect(await planner.exited, planner.output()).toBe(0);
    }, 60_000);

    test('the services wrote nothing outside /app/.data and /tmp: a read-only root filesystem holds them', async () => {
      // Each container's writable overlay layer holds everything it wrote (buildah itself adds the
      // resolver files and /run).
      const containersJson = JSON.parse(readFileSync('/var/lib/containers/storage/overlay-containers/containers.json', 'utf8')) as Array<{ id: string; layer: string }>;
      const allowed = [/^(tmp|app\/\.data)(\/|$)/, /^etc\/(hosts|hostname|resolv\.conf)$/, /^run(\/\.containerenv)?$/];
      for (const c of [planner, worker]) {
        const { stdout } = await run('buildah', ['inspect', '--type', 'container', '--format', '{{.ContainerID}}', c.name]);
        const layer = containersJson.find((x) => x.id === stdout.trim())!.layer;
        const diff = `/var/lib/containers/storage/overlay/${layer}/diff`;
        const leaves = (readdirSync(diff, { recursive: true }) as string[]).filter((path) => {
          const st = statSync(join(diff, path));
          return !st.isDirectory() || readdirSync(join(diff, path)).length === 0;
        });
        expect(leaves.filter((path) => !allowed.some((re) => re.test(path))), c.name).toEqual([]);
      }
    });
  },
);
