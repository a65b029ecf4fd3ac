import { describe, expect, test } from 'vitest';
import { UpstreamSpec, parseHeaderSource } from './upstream.js';

describe('UpstreamSpec', () => {
  const ok = (body: unknown) => UpstreamSpec.safeParse(body).success;

  test('takes http(s) URLs with secret or literal headers, and fills defaults', () => {
    expect(UpstreamSpec.parse({ url: 'https://mcp.example.com/mcp' })).toEqual({ url: 'https://mcp.example.com/mcp', headers: {}, timeoutMs: 30_000 });
    expect(ok({ url: 'http://127.0.0.1:3000/mcp', headers: { Authorization: 'secret:GH_TOKEN', 'X-Team': 'a b' } })).toBe(true);
  });

  test('refuses other schemes, credentials in the URL, reserved or malformed headers, bad secret names', () => {
    expect(ok({ url: 'ftp://example.com' })).toBe(false);
    expect(ok({ url: 'https://u:p@example.com/mcp' })).toBe(false);
    expect(ok({ url: 'https://example.com', headers: { Host: 'x' } })).toBe(false);
    expect(ok({ url: 'https://example.com', headers: { 'Mcp-Session-Id': 'x' } })).toBe(false);
    expect(ok({ url: 'https://example.com', headers: { 'Bad Name': 'x' } })).toBe(false);
    expect(ok({ url: 'https://example.com', headers: { 'X-A': 'a\nb' } })).toBe(false);
    expect(ok({ url: 'https://example.com', headers: { 'X-A': 'secret:1nvalid' } })).toBe(false);
    expect(ok({ url: 'https://example.com', code: 'x' })).toBe(false);
  });

  test('parseHeaderSource tells secret references from literals', () => {
    expect(parseHeaderSource('secret:GH_TOKEN')).toEqual({ kind: 'secret', secret: 'GH_TOKEN' });
    expect(parseHeaderSource('Bearer abc')).toEqual({ kind: 'literal', value: 'Bearer abc' });
  });
});
