import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { binary, freePort, httpReady, type Service, startService } from './index.js';

export interface Nginx extends Service {
  readonly port: number;
  /** The served folder's URL, ending in `/`. */
  readonly url: string;
}

/**
 * Debian's nginx serving `root` read-only with `autoindex on`, as a lab serves a lake over HTTP.
 * `format` picks the autoindex listing format (`html`, nginx's default, or `json`).
 */
export async function startNginx(
  root: string,
  options: { format?: 'html' | 'json'; dir?: string } = {},
): Promise<Nginx> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'bed-nginx-'));
  const port = await freePort();
  for (const t of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, t), { recursive: true });
  const me = userInfo();
  const config = `
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log info;
${me.uid === 0 ? 'user root root;' : ''}
events { worker_connections 256; }
http {
  access_log ${dir}/nginx-access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  default_type application/octet-stream;
  sendfile on;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location / {
      autoindex on;
      autoindex_format ${options.format ?? 'json'};
    }
  }
}
`;
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, config);
  const command = [binary('nginx'), '-c', conf, '-p', dir, '-e', join(dir, 'nginx-error.log')];
  const url = `http://127.0.0.1:${port}/`;
  const service = await startService({ name: 'nginx', command, dir, ready: () => httpReady(url) });
  return { ...service, port, url };
}
