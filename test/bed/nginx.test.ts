import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available } from './index.js';
import { type Nginx, startNginx } from './services.js';

describe.runIf(available('nginx'))('bed: nginx with autoindex', () => {
  const root = mkdtempSync(join(tmpdir(), 'bed-nginx-root-'));
  mkdirSync(join(root, '2c'));
  writeFileSync(join(root, '2c', 'f24dba'), 'hello');
  writeFileSync(join(root, 'config.yml'), 'levels:\n- 1\n- -1\n');
  let json: Nginx;
  let html: Nginx;
  beforeAll(async () => {
    [json, html] = await Promise.all([startNginx(root), startNginx(root, { format: 'html' })]);
  });
  afterAll(async () => {
    await Promise.all([json?.stop(), html?.stop()]);
  });

  it('serves files and HEAD', async () => {
    expect(await (await fetch(`${json.url}2c/f24dba`)).text()).toBe('hello');
    const head = await fetch(`${json.url}2c/f24dba`, { method: 'HEAD' });
    expect([head.status, head.headers.get('content-length')]).toEqual([200, '5']);
    expect((await fetch(`${json.url}2c/missing`)).status).toBe(404);
  });

  it('lists folders as JSON or HTML', async () => {
    const listing = (await (await fetch(`${json.url}2c/`)).json()) as Array<{
      name: string;
      type: string;
      size: number;
    }>;
    expect(listing).toMatchObject([{ name: 'f24dba', type: 'file', size: 5 }]);
    expect(await (await fetch(html.url)).text()).toMatch(/<a href="2c\/">2c\/<\/a>/);
  });

  it('refuses writes', async () => {
    expect((await fetch(`${json.url}2c/new`, { method: 'PUT', body: 'x' })).status).toBe(405);
  });
});
