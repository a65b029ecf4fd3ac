import { Router } from 'express';
import { RequestError, Scope, TenantName } from '@toolplane/core';
import { z } from 'zod';
import { apiSchema, type ApiRoute } from './api-spec.js';
import { requireScope } from './auth.js';
import type { PlannerDeps } from './deps.js';
import { zodIssues } from './http-util.js';

const KeyRequest = z
  .object({
    name: z.string().min(1).max(100),
    tenant: TenantName,
    scopes: z.array(Scope).min(1).max(Scope.options.length),
  })
  .strict();

/** `/v1/admin/keys`: create, list and revoke API keys (admin scope). The key is shown once, at creation. */
export function keysRouter(deps: PlannerDeps): Router {
  const v1 = Router();
  v1.use('/admin/keys', requireScope('admin'));

  v1.post('/admin/keys', async (req, res) => {
    const parsed = KeyRequest.safeParse(req.body);
    if (!parsed.success) throw new RequestError('INVALID_REQUEST', 'key request is invalid', { issues: zodIssues(parsed.error.issues) });
    const { key, record } = await deps.apiKeys.create(parsed.data);
    res.status(201).json({ ...record, key });
  });

  v1.get('/admin/keys', async (_req, res) => {
    res.json({ keys: await deps.apiKeys.list() });
  });

  v1.delete('/admin/keys/:id', async (req, res) => {
    if (!(await deps.apiKeys.revoke(String(req.params.id)))) throw new RequestError('NOT_FOUND', 'no such key');
    res.status(204).end();
  });
  return v1;
}

const KeyRecord = apiSchema('ApiKey', z.looseObject({ id: z.string(), name: z.string(), tenant: z.string(), scopes: z.array(Scope), createdAt: z.string() }));
const EXAMPLE_KEY = { id: 'k1a2b3', name: 'ci', tenant: 'acme', scopes: ['tools:read', 'calls:write'], createdAt: '2026-11-30T12:00:00.000Z' };

/** The routes of {@link keysRouter}, for the API document. */
export const keysApi: ApiRoute[] = [
  {
    method: 'post',
    path: '/v1/admin/keys',
    tag: 'admin',
    auth: 'admin',
    summary: 'Create an API key (shown once)',
    body: KeyRequest,
    responses: { 201: { description: 'the key and its record', schema: KeyRecord.extend({ key: z.string() }) } },
    example: { request: { name: 'ci', tenant: 'acme', scopes: ['tools:read', 'calls:write'] }, response: { ...EXAMPLE_KEY, key: 'tp_k1a2b3_…' } },
  },
  {
    method: 'get',
    path: '/v1/admin/keys',
    tag: 'admin',
    auth: 'admin',
    summary: 'List API keys (never the keys themselves)',
    responses: { 200: { description: 'the key records', schema: z.object({ keys: z.array(KeyRecord) }) } },
    example: { response: { keys: [EXAMPLE_KEY] } },
  },
  {
    method: 'delete',
    path: '/v1/admin/keys/:id',
    tag: 'admin',
    auth: 'admin',
    summary: 'Revoke an API key',
    responses: { 204: { description: 'revoked' } },
    errors: ['NOT_FOUND'],
    example: { params: { id: 'k1a2b3' } },
  },
];
