import { expect, test } from 'vitest';
import { ConfigError } from '@toolplane/core';
import { loadConfig } from './config.js';

test('TOOLPLANE_ADMIN_KEY is optional, and a short one stops the start with its name', () => {
  expect(loadConfig({}).TOOLPLANE_ADMIN_KEY).toBeUndefined();
  expect(loadConfig({ TOOLPLANE_ADMIN_KEY: '' }).TOOLPLANE_ADMIN_KEY).toBeUndefined();
  expect(loadConfig({ TOOLPLANE_ADMIN_KEY: 'k'.repeat(16) }).TOOLPLANE_ADMIN_KEY).toBe('k'.repeat(16));
  expect(() => loadConfig({ TOOLPLANE_ADMIN_KEY: 'short' })).toThrow(ConfigError);
  expect(() => loadConfig({ TOOLPLANE_ADMIN_KEY: 'short' })).toThrow(/TOOLPLANE_ADMIN_KEY: must be at least 16 characters/);
});
