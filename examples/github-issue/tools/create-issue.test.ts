import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, runTool, test } from '@toolplane/cli/testing';

const tool = new URL('./create-issue.ts', import.meta.url);
const received: Array<{ method?: string; url?: string; auth?: string; body: unknown }> = [];
let server: Server;
let base: string;

// A stand-in for the GitHub API on loopback: the tool's own code and fetch run unchanged, pointed here
// by the GITHUB_API_URL secret, with loopback opened as an operator would open a private range.
beforeAll(async () => {
  server = createServer((req: IncomingMessage, res) => {
    let text = '';
    req.on('data', (d: Buffer) => (text += d.toString()));
    req.on('end', () => {
      received.push({ method: req.method, url: req.url, auth: req.headers.authorization, body: JSON.parse(text || 'null') });
      const ok = req.headers.authorization === 'Bearer ghp_test';
      res.writeHead(ok ? 201 : 401, { 'content-type': 'application/json' });
      res.end(JSON.stringify(ok ? { number: 42, html_url: 'https://github.com/acme/app/issues/42' } : { message: 'Bad credentials' }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const local = () => ({ egress: [base], allowPrivateNetworks: '127.0.0.1' });

describe('create_github_issue', () => {
  test('posts the issue with the token and returns its number and URL', async () => {
    const { value, logs } = await runTool(
      tool,
      { repo: 'acme/app', title: 'Checkout fails', labels: ['bug'] },
      { ...local(), secrets: { GITHUB_TOKEN: 'ghp_test', GITHUB_API_URL: `http://${base}` } },
    );
    expect(value).toEqual({ number: 42, url: 'https://github.com/acme/app/issues/42' });
    expect(received.at(-1)).toEqual({ method: 'POST', url: '/repos/acme/app/issues', auth: 'Bearer ghp_test', body: { title: 'Checkout fails', labels: ['bug'] } });
    expect(logs.join('\n')).toContain('opened acme/app#42');
  });

  test("GitHub's refusal becomes a TOOL_ERROR with its message, and the token never shows", async () => {
    const err = await runTool(tool, { repo: 'acme/app', title: 'x' }, { ...local(), secrets: { GITHUB_TOKEN: 'ghp_wrong', GITHUB_API_URL: `http://${base}` } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'TOOL_ERROR', message: expect.stringContaining('GitHub answered 401: Bad credentials') });
    expect(JSON.stringify(err)).not.toContain('ghp_wrong');
  });

  test('without the token it says which secret to set', async () => {
    await expect(runTool(tool, { repo: 'acme/app', title: 'x' }, local())).rejects.toMatchObject({ message: expect.stringContaining('GITHUB_TOKEN is not set') });
  });

  test('a host outside egress is refused (EGRESS_DENIED), whatever the secret says', async () => {
    await expect(
      runTool(tool, { repo: 'acme/app', title: 'x' }, { egress: ['api.github.com'], allowPrivateNetworks: '127.0.0.1', secrets: { GITHUB_TOKEN: 'ghp_test', GITHUB_API_URL: `http://${base}` } }),
    ).rejects.toMatchObject({ code: 'EGRESS_DENIED' });
  });
});
