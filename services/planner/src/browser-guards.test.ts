import { describe, expect, test } from 'vitest';
import { isCrossOrigin } from './browser-guards.js';

const req = (headers: Record<string, string>) => ({ get: (name: string) => headers[name.toLowerCase()] });

describe('isCrossOrigin', () => {
  test('scripts and curl, which send none of the browser headers, pass', () => {
    expect(isCrossOrigin(req({ host: 'planner:8080' }))).toBe(false);
  });

  test('Sec-Fetch-Site: only same-origin and none (address bar, bookmark) pass', () => {
    expect(isCrossOrigin(req({ host: 'localhost:8080', 'sec-fetch-site': 'same-origin' }))).toBe(false);
    expect(isCrossOrigin(req({ host: 'localhost:8080', 'sec-fetch-site': 'none' }))).toBe(false);
    // Another port of the same host (Grafana on :3000) is same-site, and refused.
    expect(isCrossOrigin(req({ host: 'localhost:8080', 'sec-fetch-site': 'same-site' }))).toBe(true);
    expect(isCrossOrigin(req({ host: 'localhost:8080', 'sec-fetch-site': 'cross-site' }))).toBe(true);
    expect(isCrossOrigin(req({ host: 'localhost:8080', 'sec-fetch-site': 'cross-site', origin: 'http://localhost:8080' }))).toBe(true);
  });

  test('Origin must name the host the request went to; null and other schemes never pass', () => {
    expect(isCrossOrigin(req({ host: 'localhost:8080', origin: 'http://localhost:8080' }))).toBe(false);
    expect(isCrossOrigin(req({ host: 'LOCALHOST:8080', origin: 'http://localhost:8080', 'sec-fetch-site': 'same-origin' }))).toBe(false);
    expect(isCrossOrigin(req({ host: 'localhost:8080', origin: 'http://localhost:3000' }))).toBe(true);
    expect(isCrossOrigin(req({ host: 'localhost:8080', origin: 'https://evil.example' }))).toBe(true);
    expect(isCrossOrigin(req({ host: 'localhost:8080', origin: 'null' }))).toBe(true);
    expect(isCrossOrigin(req({ host: 'localhost:8080', origin: 'file://' }))).toBe(true);
    expect(isCrossOrigin(req({ origin: 'http://localhost:8080' }))).toBe(true);
    // A matching Origin does not outweigh what the browser itself says about the site.
    expect(isCrossOrigin(req({ host: 'localhost:8080', origin: 'http://localhost:8080', 'sec-fetch-site': 'cross-site' }))).toBe(true);
  });

  test('Referer decides only when a browser sent neither Sec-Fetch-Site nor Origin', () => {
    expect(isCrossOrigin(req({ host: 'localhost:8080', referer: 'https://evil.example/page' }))).toBe(true);
    expect(isCrossOrigin(req({ host: 'localhost:8080', referer: 'http://localhost:8080/admin/queues' }))).toBe(false);
    expect(isCrossOrigin(req({ host: 'localhost:8080', referer: 'https://evil.example/', 'sec-fetch-site': 'none' }))).toBe(false);
  });
});
