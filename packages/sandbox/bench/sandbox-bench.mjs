// Sandbox micro-benchmarks, run with `node --no-node-snapshot bench/sandbox-bench.mjs` after a build.
// Prints progress to stderr and one JSON object on the last stdout line (read by `make bench`).
// Each figure is the median of REPEATS runs, with min and max.
import vm from 'node:vm';
import { Sandbox, SandboxFleet } from '../dist/index.js';

const REPEATS = Number(process.env.BENCH_REPEATS ?? 5);
const WARM_CALLS = Number(process.env.BENCH_WARM_CALLS ?? 5000);
const CONCURRENCY = 8;
const CODE = 'export default async function (args, ctx) { return args.a + args.b }';
const tool = (key) => ({ key, code: CODE, timeoutMs: 1000, memoryMb: 32, maxResultBytes: 1 << 20 });

function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const round = (x) => Math.round(x * 100) / 100;
  return { median: round(s[Math.floor(s.length / 2)]), min: round(s[0]), max: round(s.at(-1)) };
}

async function repeat(name, fn) {
  const samples = [];
  for (let i = 0; i < REPEATS; i++) samples.push(await fn(i));
  const st = stats(samples);
  process.stderr.write(`${name}: ${st.median} (min ${st.min}, max ${st.max})\n`);
  return st;
}

const sandbox = new Sandbox({ maxIsolatesPerTool: CONCURRENCY });
const warmTool = tool('bench-warm');
for (let i = 0; i < 2000; i++) await sandbox.run(warmTool, { a: 1, b: i });

// Sequential latency of one warm call: fresh module instance, run, result out.
const warm = await repeat('warm_call_us', async () => {
  const t0 = performance.now();
  for (let i = 0; i < WARM_CALLS; i++) await sandbox.run(warmTool, { a: 1, b: i });
  return ((performance.now() - t0) / WARM_CALLS) * 1000;
});

// Throughput under concurrency: host CPU per call (user+system) while CONCURRENCY calls are in flight.
const concurrent = await repeat('warm_call_us_concurrent', async () => {
  const cpu0 = process.cpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < WARM_CALLS) {
        next++;
        await sandbox.run(warmTool, { a: 1, b: next });
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / WARM_CALLS;
});

// Cold start: the first call of a new tool version (new isolate, lockdown, runner, compile).
let cold = 0;
const coldStart = await repeat('cold_start_ms', async () => {
  const samples = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await sandbox.run(tool(`bench-cold-${cold++}`), { a: 1, b: 2 });
    samples.push(performance.now() - t0);
  }
  return stats(samples).median;
});

// Baselines in the same process: a reused node:vm context calling a compiled function, and a direct call.
const context = vm.createContext({});
const vmFn = new vm.Script('(async function (args) { return args.a + args.b })').runInContext(context);
const nodeVm = await repeat('node_vm_call_us', async () => {
  const t0 = performance.now();
  for (let i = 0; i < WARM_CALLS * 4; i++) await vmFn({ a: 1, b: i });
  return ((performance.now() - t0) / (WARM_CALLS * 4)) * 1000;
});
const direct = async (args) => args.a + args.b;
const directCall = await repeat('direct_call_us', async () => {
  const t0 = performance.now();
  for (let i = 0; i < WARM_CALLS * 4; i++) await direct({ a: 1, b: i });
  return ((performance.now() - t0) / (WARM_CALLS * 4)) * 1000;
});

await sandbox.close();

// The same tool through a SandboxFleet: isolates in a host process, calls over a socket pair.
const fleet = new SandboxFleet({ hosts: 1, maxIsolatesPerTool: CONCURRENCY });
await fleet.ready();
for (let i = 0; i < 2000; i++) await fleet.run(warmTool, { a: 1, b: i });
const fleetWarm = await repeat('fleet_call_us', async () => {
  const t0 = performance.now();
  for (let i = 0; i < WARM_CALLS; i++) await fleet.run(warmTool, { a: 1, b: i });
  return ((performance.now() - t0) / WARM_CALLS) * 1000;
});
// 100 calls in flight, as a busy worker has: what the boundary costs the worker (parent CPU per
// call) and what one host carries (calls per second).
let fleetRate = 0;
const fleetParentCpu = await repeat('fleet_parent_cpu_us_per_call', async () => {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 100 }, async () => {
      while (next < WARM_CALLS * 2) {
        next++;
        await fleet.run(warmTool, { a: 1, b: next });
      }
    }),
  );
  fleetRate = Math.round((WARM_CALLS * 2) / ((performance.now() - t0) / 1000));
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / (WARM_CALLS * 2);
});
process.stderr.write(`fleet_calls_per_s (100 in flight, last repeat): ${fleetRate}\n`);
// A host blocked by tool code (a microtask chain isolated-vm cannot stop, timeout 300 ms): when the
// call ends, and how long the next call then takes (served by the spare host).
const spin = { ...tool('bench-spin'), timeoutMs: 300, code: 'export default () => { function bad() { Promise.resolve().then(function () { bad(); for (;;); }); } bad(); for (;;); }' };
let nextCallMs = 0;
const blocked = await repeat('fleet_blocked_call_ends_ms', async () => {
  const t0 = performance.now();
  await fleet.run(spin, {}).catch(() => {});
  const ended = performance.now() - t0;
  const t1 = performance.now();
  await fleet.run(warmTool, { a: 1, b: 2 });
  nextCallMs = Math.max(nextCallMs, performance.now() - t1);
  return ended;
});
process.stderr.write(`fleet_next_call_ms after a kill (max): ${nextCallMs.toFixed(1)}\n`);
await fleet.close();

const result = {
  warm_call_us: warm.median,
  warm_call_us_concurrent: concurrent.median,
  cold_start_ms: coldStart.median,
  node_vm_call_us: nodeVm.median,
  direct_call_us: directCall.median,
  fleet_call_us: fleetWarm.median,
  fleet_parent_cpu_us_per_call: fleetParentCpu.median,
  fleet_calls_per_s: fleetRate,
  fleet_blocked_call_ends_ms: blocked.median,
  fleet_next_call_after_kill_ms: Math.round(nextCallMs * 10) / 10,
  warm_vs_node_vm: Math.round((warm.median / nodeVm.median) * 10) / 10,
  warm_call_goal_us: 50,
  repeats: REPEATS,
  calls_per_repeat: WARM_CALLS,
  ranges: { fleet_call_us: fleetWarm, fleet_parent_cpu_us_per_call: fleetParentCpu, fleet_blocked_call_ends_ms: blocked, warm_call_us: warm, warm_call_us_concurrent: concurrent, cold_start_ms: coldStart, node_vm_call_us: nodeVm, direct_call_us: directCall },
};
console.log(JSON.stringify(result));
