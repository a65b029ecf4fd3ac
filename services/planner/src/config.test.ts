import { describe, expect, test } from 'vitest';
import { ConfigError } from '@toolplane/core';
import { loadConfig, modelEndpoint } from './config.js';

describe('planner config for agent runs', () => {
  test('a model endpoint from a base URL, a key alone, or none', () => {
    expect(modelEndpoint(loadConfig({ OPENAI_BASE_URL: 'http://127.0.0.1:9/v1' }))).toEqual({ baseUrl: 'http://127.0.0.1:9/v1' });
    expect(modelEndpoint(loadConfig({ OPENAI_API_KEY: 'sk-x' }))).toEqual({ baseUrl: 'https://api.openai.com/v1', apiKey: 'sk-x' });
    expect(modelEndpoint(loadConfig({}))).toBeUndefined();
  });

  test('the price table is JSON merged by model name, and a bad one names the variable', () => {
    const config = loadConfig({ TOOLPLANE_MODEL_PRICES: '{"m":{"inputUsdPerMTok":1,"outputUsdPerMTok":2}}' });
    expect(config.TOOLPLANE_MODEL_PRICES).toEqual({ m: { inputUsdPerMTok: 1, outputUsdPerMTok: 2 } });
    for (const bad of ['{nope', '{"m":{"inputUsdPerMTok":-1,"outputUsdPerMTok":2}}', '{"m":{}}']) {
      expect(() => loadConfig({ TOOLPLANE_MODEL_PRICES: bad })).toThrow(ConfigError);
      expect(() => loadConfig({ TOOLPLANE_MODEL_PRICES: bad })).toThrow(/TOOLPLANE_MODEL_PRICES/);
    }
    expect(() => loadConfig({ OPENAI_BASE_URL: 'not a url' })).toThrow(/OPENAI_BASE_URL/);
    expect(() => loadConfig({ RUN_LEASE_MS: '10' })).toThrow(/RUN_LEASE_MS/);
  });
});

test('TOOLPLANE_ADMIN_KEY is optional, and a short one stops the start with its name', () => {
  expect(loadConfig({}).TOOLPLANE_ADMIN_KEY).toBeUndefined();
  expect(loadConfig({ TOOLPLANE_ADMIN_KEY: '' }).TOOLPLANE_ADMIN_KEY).toBeUndefined();
  expect(loadConfig({ TOOLPLANE_ADMIN_KEY: 'k'.repeat(16) }).TOOLPLANE_ADMIN_KEY).toBe('k'.repeat(16));
  expect(() => loadConfig({ TOOLPLANE_ADMIN_KEY: 'short' })).toThrow(ConfigError);
  expect(() => loadConfig({ TOOLPLANE_ADMIN_KEY: 'short' })).toThrow(/TOOLPLANE_ADMIN_KEY: must be at least 16 characters/);
});

test('tracing is off unless OTEL_EXPORTER_OTLP_ENDPOINT is set, and a bad endpoint stops the start with its name', () => {
  expect(loadConfig({}).OTEL_EXPORTER_OTLP_ENDPOINT).toBeUndefined();
  const on = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_BSP_SCHEDULE_DELAY: '250' });
  expect(on).toMatchObject({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_BSP_SCHEDULE_DELAY: 250 });
  expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT/);
  expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://collector' })).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT/);
  expect(() => loadConfig({ OTEL_BSP_SCHEDULE_DELAY: '0' })).toThrow(/OTEL_BSP_SCHEDULE_DELAY/);
});
