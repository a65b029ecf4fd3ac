import { Router } from 'express';
import { RequestError, Scope, TenantName } from '@toolplane/core';
import { z } from 'zod';
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
