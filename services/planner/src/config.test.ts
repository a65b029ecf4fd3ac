import { describe, expect, test } from 'vitest';
import { ConfigError } from '@toolplane/core';
import { loadConfig, modelEndpoint } from './config.js';

/** Every other test needs a valid auth setting; an admin key is the default way to give one. */
const load = (env: Record<string, string>) => loadConfig({ TOOLPLANE_ADMIN_KEY: 'k'.repeat(16), ...env });

describe('planner config for agent runs', () => {
  test('a model endpoint from a base URL, a key alone, or none', () => {
    expect(modelEndpoint(load({ OPENAI_BASE_URL: 'http://127.0.0.1:9/v1' }))).toEqual({ baseUrl: 'http://127.0.0.1:9/v1' });
    expect(modelEndpoint(load({ OPENAI_API_KEY: 'sk-x' }))).toEqual({ baseUrl: 'https://api.openai.com/v1', apiKey: 'sk-x' });
    expect(modelEndpoint(load({}))).toBeUndefined();
  });

  test('the price table is JSON merged by model name, and a bad one names the variable', () => {
    const config = load({ TOOLPLANE_MODEL_PRICES: '{"m":{"inputUsdPerMTok":1,"outputUsdPerMTok":2}}' });
    expect(config.TOOLPLANE_MODEL_PRICES).toEqual({ m: { inputUsdPerMTok: 1, outputUsdPerMTok: 2 } });
    for (const bad of ['{nope', '{"m":{"inputUsdPerMTok":-1,"outputUsdPerMTok":2}}', '{"m":{}}']) {
      expect(() => load({ TOOLPLANE_MODEL_PRICES: bad })).toThrow(ConfigError);
      expect(() => load({ TOOLPLANE_MODEL_PRICES: bad })).toThrow(/TOOLPLANE_MODEL_PRICES/);
    }
    expect(() => load({ OPENAI_BASE_URL: 'not a url' })).toThrow(/OPENAI_BASE_URL/);
    expect(() => load({ RUN_LEASE_MS: '10' })).toThrow(/RUN_LEASE_MS/);
  });
});

test('auth is on unless TOOLPLANE_AUTH=off: without an admin key the start stops, naming the variable', () => {
  for (const env of [{}, { TOOLPLANE_ADMIN_KEY: '' }, { TOOLPLANE_AUTH: 'on' }, { TOOLPLANE_AUTH: 'ON' }, { TOOLPLANE_AUTH: 'false' }]) {
    expect(() => loadConfig(env), JSON.stringify(env)).toThrow(ConfigError);
  }
  expect(() => loadConfig({})).toThrow(/TOOLPLANE_ADMIN_KEY: is required .*TOOLPLANE_AUTH=off/);
  expect(() => loadConfig({ TOOLPLANE_AUTH: 'false' })).toThrow(/TOOLPLANE_AUTH/);
  expect(loadConfig({ TOOLPLANE_ADMIN_KEY: 'k'.repeat(16) })).toMatchObject({ TOOLPLANE_AUTH: 'on', TOOLPLANE_ADMIN_KEY: 'k'.repeat(16) });
  expect(loadConfig({ TOOLPLANE_AUTH: 'off' }).TOOLPLANE_AUTH).toBe('off');
  expect(loadConfig({ TOOLPLANE_AUTH: 'off' }).TOOLPLANE_ADMIN_KEY).toBeUndefined();
  expect(loadConfig({ TOOLPLANE_AUTH: 'off', TOOLPLANE_ADMIN_KEY: '' }).TOOLPLANE_AUTH).toBe('off');
  // Both at once is a contradiction, most likely a leftover: refused rather than guessed.
  expect(() => loadConfig({ TOOLPLANE_AUTH: 'off', TOOLPLANE_ADMIN_KEY: 'k'.repeat(16) })).toThrow(/TOOLPLANE_AUTH: is off while TOOLPLANE_ADMIN_KEY is set/);
});

test('a short TOOLPLANE_ADMIN_KEY stops the start with its name, and the message never repeats it', () => {
  expect(() => loadConfig({ TOOLPLANE_ADMIN_KEY: 'short' })).toThrow(ConfigError);
  expect(() => loadConfig({ TOOLPLANE_ADMIN_KEY: 'short' })).toThrow(/TOOLPLANE_ADMIN_KEY: must be at least 16 characters/);
  expect(() => loadConfig({ TOOLPLANE_ADMIN_KEY: 'tiny-secret' })).toThrow(ConfigError);
  expect(() => loadConfig({ TOOLPLANE_ADMIN_KEY: 'tiny-secret' })).not.toThrow(/tiny-secret/);
});

test('tracing is off unless OTEL_EXPORTER_OTLP_ENDPOINT is set, and a bad endpoint stops the start with its name', () => {
  expect(load({}).OTEL_EXPORTER_OTLP_ENDPOINT).toBeUndefined();
  const on = load({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_BSP_SCHEDULE_DELAY: '250' });
  expect(on).toMatchObject({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_BSP_SCHEDULE_DELAY: 250 });
  expect(() => load({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT/);
  expect(() => load({ OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://collector' })).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT/);
  expect(() => load({ OTEL_BSP_SCHEDULE_DELAY: '0' })).toThrow(/OTEL_BSP_SCHEDULE_DELAY/);
});

describe('history settings', () => {
  const base = { TOOLPLANE_AUTH: 'off' };
  test('HISTORY_URL: Postgres or an SQLite path; empty means the embedded default', () => {
    expect(loadConfig({ ...base, HISTORY_URL: 'postgres://u:p@db:5432/h' }).HISTORY_URL).toBe('postgres://u:p@db:5432/h');
    expect(loadConfig({ ...base, HISTORY_URL: 'sqlite:/tmp/h.sqlite' }).HISTORY_URL).toBe('sqlite:/tmp/h.sqlite');
    expect(loadConfig({ ...base, HISTORY_URL: '' }).HISTORY_URL).toBeUndefined();
    expect(() => loadConfig({ ...base, HISTORY_URL: 'mysql://x' })).toThrow(/HISTORY_URL/);
    expect(loadConfig(base).CALL_HOT_RETENTION_MS).toBe(300_000);
  });
});

test('the platform deadline of calls is an hour by default, 0 turns it off, and a bad one names the variable', () => {
  expect(load({}).CALL_DEFAULT_DEADLINE_MS).toBe(3_600_000);
  expect(load({ CALL_DEFAULT_DEADLINE_MS: '0' }).CALL_DEFAULT_DEADLINE_MS).toBe(0);
  for (const bad of ['-1', '1.5', 'soon', String(7 * 86_400_000 + 1)]) {
    expect(() => load({ CALL_DEFAULT_DEADLINE_MS: bad }), bad).toThrow(/CALL_DEFAULT_DEADLINE_MS/);
  }
});
