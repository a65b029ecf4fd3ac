// `make down`: stops what a `make up` in the background left running.
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const file = join(dirname(fileURLToPath(import.meta.url)), '..', '.data', 'pids.json');
let pids = [];
try {
  pids = JSON.parse(readFileSync(file, 'utf8'));
} catch {
  console.log('nothing is running');
  process.exit(0);
}
for (const { name, pid } of pids.reverse()) {
  try {
    process.kill(pid, 'SIGTERM');
    console.log(`stopped ${name} (${pid})`);
  } catch {}
}
rmSync(file, { force: true });
