import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { newWebhookSecret, signWebhook, verifyWebhook, webhookHeaders } from './signature.js';

describe('webhook signatures', () => {
  it('signs id.timestamp.body with HMAC-SHA256 of the base64-decoded key (Standard Webhooks test vector)', () => {
    // The example of the Standard Webhooks specification (spec/standard-webhooks.md, "Verifying").
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const body = '{"test": 2432232314}';
    expect(signWebhook(secret, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, body)).toBe(
      'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    );
  });

  it('makes secrets of 32 random bytes', () => {
    const a = newWebhookSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(a.slice(6), 'base64')).toHaveLength(32);
    expect(newWebhookSecret()).not.toBe(a);
  });

  it('verifies its own headers, with any of several secrets, and nothing tampered with', () => {
    const [current, previous, other] = [newWebhookSecret(), newWebhookSecret(), newWebhookSecret()];
    const now = 1_800_000_000_000;
    const h = webhookHeaders([current, previous], 'msg_1', '{"a":1}', now);
    expect(h['webhook-timestamp']).toBe('1800000000');
    expect(h['webhook-signature'].split(' ')).toHaveLength(2);
    expect(verifyWebhook(current, h, '{"a":1}', { nowMs: now })).toBe(true);
    expect(verifyWebhook(previous, h, '{"a":1}', { nowMs: now })).toBe(true);
    expect(verifyWebhook(other, h, '{"a":1}', { nowMs: now })).toBe(false);
    expect(verifyWebhook(current, h, '{"a":2}', { nowMs: now })).toBe(false);
    expect(verifyWebhook(current, { ...h, 'webhook-id': 'msg_2' }, '{"a":1}', { nowMs: now })).toBe(false);
    // Outside the replay window, either way.
    expect(verifyWebhook(current, h, '{"a":1}', { nowMs: now + 301_000 })).toBe(false);
    expect(verifyWebhook(current, h, '{"a":1}', { nowMs: now - 301_000 })).toBe(false);
    expect(verifyWebhook(current, {}, '{"a":1}', { nowMs: now })).toBe(false);
  });

  it('is plain HMAC-SHA256, so any receiver can check it with its own crypto', () => {
    const secret = newWebhookSecret();
    const mac = createHmac('sha256', Buffer.from(secret.slice(6), 'base64')).update('id.5.body').digest('base64');
    expect(signWebhook(secret, 'id', 5, 'body')).toBe(`v1,${mac}`);
    expect(() => signWebhook('nope', 'id', 5, 'body')).toThrow(/whsec_/);
  });
});
