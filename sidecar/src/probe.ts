import { request } from 'node:http';

/**
 * `tarn-sidecar probe --socket PATH`: the kubelet's exec probe of the sidecar (a Unix socket cannot
 * be probed by httpGet). Exit 0 when GET /readyz answers 200 within the timeout, else 1 with why.
 */
export function probe(socket: string, timeoutMs = 3000): Promise<{ ok: boolean; why: string }> {
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: '/readyz', method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        if (body.length < 4096) body += d;
      });
      res.on('end', () =>
        resolve({
          ok: res.statusCode === 200,
          why: `readyz answered ${res.statusCode}: ${body.slice(0, 300)}`,
        }),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ ok: false, why: `cannot reach ${socket}: ${e.message}` }));
    req.end();
  });
}
