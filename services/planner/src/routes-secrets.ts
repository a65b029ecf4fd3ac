import { Router } from 'express';
import { RequestError, SecretName } from '@toolplane/core';
import { z } from 'zod';
import type { ApiRoute } from './api-spec.js';
import { principalOf, requireScope } from './auth.js';
import type { PlannerDeps } from './deps.js';

/** Largest secret value accepted: keys and tokens, not files. */
export const MAX_SECRET_BYTES = 64 * 1024;

const SecretBody = z.object({ value: z.string().min(1) }).strict();

function parseSecretName(raw: unknown): string {
  const parsed = SecretName.safeParse(raw);
  if (!parsed.success) throw new RequestError('INVALID_REQUEST', `invalid secret name: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

/**
 * `/v1/secrets`: set, list (names only) and delete secrets. No route ever answers with a value,
 * and errors never quote the body.
 */
export function secretsRouter(deps: PlannerDeps): Router {
  const v1 = Router();
  v1.put('/secrets/:name', requireScope('secrets:write'), async (req, res) => {
    const name = parseSecretName(req.params.name);
    const parsed = SecretBody.safeParse(req.body);
    if (!parsed.success) throw new RequestError('INVALID_REQUEST', 'body must be {"value": "<non-empty string>"}');
    if (Buffer.byteLength(parsed.data.value) > MAX_SECRET_BYTES) {
      throw new RequestError('PAYLOAD_TOO_LARGE', `secret values are limited to ${MAX_SECRET_BYTES} bytes`);
    }
    const { created } = await deps.secrets.put(principalOf(res).tenant, name, parsed.data.value);
    res.status(created ? 201 : 200).json({ name });
  });

  v1.get('/secrets', requireScope('secrets:write'), async (_req, res) => {
    res.json({ secrets: (await deps.secrets.names(principalOf(res).tenant)).map((name) => ({ name })) });
  });

  v1.delete('/secrets/:name', requireScope('secrets:write'), async (req, res) => {
    const name = parseSecretName(req.params.name);
    if (!(await deps.secrets.delete(principalOf(res).tenant, name))) throw new RequestError('NOT_FOUND', `no secret named '${name}'`);
    res.status(204).end();
  });
  return v1;
}

const SecretParams = z.object({ name: SecretName });

/** The routes of {@link secretsRouter}, for the API document. */
export const secretsApi: ApiRoute[] = [
  {
    method: 'put',
    path: '/v1/secrets/:name',
    tag: 'secrets',
    auth: 'secrets:write',
    summary: 'Set a secret of your tenant',
    description: 'Tools that list the name in `secrets` get it as `ctx.secrets`. No route ever returns a value.',
    params: SecretParams,
    body: SecretBody,
    responses: { 201: { description: 'created', schema: z.object({ name: z.string() }) }, 200: { description: 'replaced', schema: z.object({ name: z.string() }) } },
    example: { request: { value: 'sk-live-…' }, response: { name: 'STRIPE_KEY' } },
  },
  {
    method: 'get',
    path: '/v1/secrets',
    tag: 'secrets',
    auth: 'secrets:write',
    summary: "List your tenant's secret names",
    responses: { 200: { description: 'names only', schema: z.object({ secrets: z.array(z.object({ name: z.string() })) }) } },
    example: { response: { secrets: [{ name: 'STRIPE_KEY' }] } },
  },
  {
    method: 'delete',
    path: '/v1/secrets/:name',
    tag: 'secrets',
    auth: 'secrets:write',
    summary: 'Delete a secret',
    params: SecretParams,
    responses: { 204: { description: 'deleted' } },
    errors: ['NOT_FOUND'],
    example: { params: { name: 'STRIPE_KEY' } },
  },
];
