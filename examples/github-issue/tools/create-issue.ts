import { defineTool } from '@toolplane/sdk';
import * as z from 'zod';

/**
 * Opens an issue on GitHub (or GitHub Enterprise: set the secret GITHUB_API_URL to
 * `https://HOST/api/v3` and add HOST to `egress`) with a token from the tenant's secrets.
 */
export default defineTool({
  name: 'create_github_issue',
  description: 'Opens an issue in a GitHub repository and returns its number and URL',
  parameters: z.object({
    repo: z.string().regex(/^[\w.-]+\/[\w.-]+$/, 'owner/name'),
    title: z.string().min(1).max(256),
    body: z.string().max(65_536).optional(),
    labels: z.array(z.string()).max(20).optional(),
  }),
  egress: ['api.github.com'],
  secrets: ['GITHUB_TOKEN', 'GITHUB_API_URL'],
  limits: { timeoutMs: 10_000 },
  run: async ({ repo, title, body, labels }, ctx) => {
    const token = ctx.secrets.GITHUB_TOKEN;
    if (!token) throw new Error('the secret GITHUB_TOKEN is not set: PUT /v1/secrets/GITHUB_TOKEN');
    const api = new URL(`repos/${repo}/issues`, `${ctx.secrets.GITHUB_API_URL ?? 'https://api.github.com'}/`);
    const res = await fetch(api, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        accept: 'application/vnd.github+json',
        'x-github-api-version': '2022-11-28',
        'content-type': 'application/json',
      },
      body: JSON.stringify({ title, body, labels }),
      signal: ctx.signal,
    });
    const reply = (await res.json()) as { number?: number; html_url?: string; message?: string };
    if (!res.ok) throw new Error(`GitHub answered ${res.status}: ${reply.message ?? res.statusText}`);
    ctx.log(`opened ${repo}#${reply.number}`);
    return { number: reply.number ?? null, url: reply.html_url ?? null };
  },
});
