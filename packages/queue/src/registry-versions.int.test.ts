import { expect, test } from 'vitest';
import { ToolSpec } from '@toolplane/core';
import { createKeys } from './keys.js';
import { ToolRegistry } from './registry.js';
import { sharedRedis, freshPrefix } from '../../../test/support/redis.js';

const redis = sharedRedis();

const spec = (n: number) => ToolSpec.parse({ description: 'd', parameters: { type: 'object' }, code: `export default () => ${n}` });

test('versions list newest first with code hashes and authors; rollback makes a new version of old code', async () => {
  const registry = new ToolRegistry(redis, createKeys(freshPrefix('rv')));
  await registry.put('t', spec(1), 'ten', { createdBy: 'k1' });
  await registry.put('t', spec(2), 'ten', { createdBy: 'k2' });
  const before = await registry.versions('t');
  expect(before.map((v) => [v.version, v.current, v.createdBy])).toEqual([[2, true, 'k2'], [1, false, 'k1']]);
  expect(before[0]!.codeHash).not.toBe(before[1]!.codeHash);
  const rolled = await registry.rollback('t', 1, { createdBy: 'k3' });
  expect(rolled).toMatchObject({ version: 3, code: 'export default () => 1', rolledBackFrom: 1, tenant: 'ten' });
  expect((await registry.get('t'))?.version).toBe(3);
  const after = await registry.versions('t');
  expect(after[0]).toMatchObject({ version: 3, current: true, rolledBackFrom: 1, codeHash: before[1]!.codeHash });
  expect(await registry.rollback('t', 99)).toBeUndefined();
});

test('pruning drops the oldest versions past the count, never the current or a referenced one', async () => {
  const registry = new ToolRegistry(redis, createKeys(freshPrefix('rp')), { maxVersions: 3 });
  for (let i = 1; i <= 6; i++) await registry.put('p', spec(i));
  expect(await registry.prune('p', new Set([2]))).toEqual([3, 1]);
  expect((await registry.versions('p')).map((v) => v.version)).toEqual([6, 5, 4, 2]);
  expect(await registry.getVersion('p', 1)).toBeUndefined();
  expect((await registry.getVersion('p', 2))?.code).toBe('export default () => 2');
  // Rolled back to an old version, the current one is the newest and older ones go.
  await registry.rollback('p', 2);
  expect(await registry.prune('p')).toEqual([4, 2]);
  expect((await registry.versions('p')).map((v) => v.version)).toEqual([7, 6, 5]);
});
