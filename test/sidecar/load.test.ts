import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prng, pseudoRandom, sha256 } from '../helpers/data.js';
import { fdCount, fdTargets, rssBytes } from '../helpers/proc.js';
import { tarn } from '../helpers/spawn.js';
import { tempDir } from '../helpers/tmp.js';
import { logLines, type Sidecar, startSidecar } from './serve-process.js';

/** Seconds of load; the issue asks for 20 (TARN_LOAD_SECONDS=120 for a longer soak by hand). */
const SECONDS = Number(process.env.TARN_LOAD_SECONDS ?? 20);
const CLIENTS = 64;
/** Seconds of the same load before the measure starts: the heap grows to its working size. */
const WARMUP = Number(process.env.TARN_LOAD_WARMUP_SECONDS ?? 10);
const KiB = 1024;
const MiB = 1024 * KiB;
/** How far above its warm level the server's RSS may stay after the load (see the test). */
const RSS_SLACK = 32 * MiB;
/** How far above its idle level the warm level may be. */
const WARM_CEILING = 160 * MiB;

const dir = tempDir('tarn-load-');
const lake = join(dir, 'lake');

/** Sizes from 1 KiB to 1 MiB, spread evenly on a log scale (as many small values as large ones). */
function logSize(u: number): number {
  return Math.round(KiB * 1024 ** u);
}

interface Value {
  key: string;
  bytes: Buffer;
}

type Op = 'put-new' | 'put-stored' | 'get' | 'get-range' | 'head' | 'path';
/** Cumulative shares of each kind of request. */
const MIX: Array<[Op, number]> = [
  ['put-new', 0.12],
  ['put-stored', 0.25],
  ['get', 0.5],
  ['get-range', 0.65],
  ['head', 0.78],
  ['path', 1],
];

class Failures {
  count = 0;
  readonly first: string[] = [];
  add(op: Op, what: string): void {
    this.count++;
    if (this.first.length < 20) this.first.push(`${op}: ${what}`);
  }
}

interface Run {
  served: Record<Op, number>;
  total: number;
  failures: Failures;
  bytesIn: number;
  bytesOut: number;
}

/** One request of kind `op`, checked: a string saying what was wrong, or undefined. */
async function one(
  agent: Agent,
  op: Op,
  pool: Value[],
  rand: () => number,
  run: Run,
): Promise<string | undefined> {
  const base = 'http://tarn';
  const v = pool[Math.floor(rand() * pool.length)] as Value;
  switch (op) {
    case 'put-new':
    case 'put-stored': {
      const bytes = op === 'put-new' ? randomBytes(logSize(rand())) : v.bytes;
      const r = await request(`${base}/v1/blobs`, {
        dispatcher: agent,
        method: 'PUT',
        body: bytes,
        headers: { 'content-type': 'application/octet-stream' },
      });
      const json = (await r.body.json()) as { key: string; size: number; status: string };
      run.bytesOut += bytes.byteLength;
      const want = {
        key: sha256(bytes),
        size: bytes.byteLength,
        status: op === 'put-new' ? 'stored' : 'existed',
      };
      if (r.statusCode !== 201 || JSON.stringify(json) !== JSON.stringify(want))
        return `${r.statusCode} ${JSON.stringify(json)}, not 201 ${JSON.stringify(want)}`;
      return undefined;
    }
    case 'get': {
      const r = await request(`${base}/v1/blobs/${v.key}`, { dispatcher: agent });
      const body = Buffer.from(await r.body.arrayBuffer());
      run.bytesIn += body.byteLength;
      if (r.statusCode !== 200) return `${r.statusCode} ${body.toString().slice(0, 200)}`;
      if (!body.equals(v.bytes))
        return `${body.byteLength} bytes that are not the value's ${v.bytes.byteLength}`;
      if (r.headers.etag !== `"${v.key}"`) return `etag ${r.headers.etag}`;
      return undefined;
    }
    case 'get-range': {
      const size = v.bytes.byteLength;
      const start = Math.floor(rand() * size);
      const end = Math.min(size - 1, start + Math.floor(rand() * 256 * KiB));
      const r = await request(`${base}/v1/blobs/${v.key}`, {
        dispatcher: agent,
        headers: { range: `bytes=${start}-${end}` },
      });
      const body = Buffer.from(await r.body.arrayBuffer());
      run.bytesIn += body.byteLength;
      if (r.statusCode !== 206) return `${r.statusCode} ${body.toString().slice(0, 200)}`;
      if (!body.equals(v.bytes.subarray(start, end + 1))) return `bytes ${start}-${end} wrong`;
      if (r.headers['content-range'] !== `bytes ${start}-${end}/${size}`)
        return `content-range ${r.headers['content-range']}`;
      return undefined;
    }
    case 'head': {
      const r = await request(`${base}/v1/blobs/${v.key}`, { dispatcher: agent, method: 'HEAD' });
      await r.body.dump();
      if (r.statusCode !== 200 || r.headers['content-length'] !== String(v.bytes.byteLength))
        return `${r.statusCode} content-length ${r.headers['content-length']}`;
      return undefined;
    }
    case 'path': {
      const r = await request(`${base}/v1/blobs/${v.key}/path`, { dispatcher: agent });
      const json = (await r.body.json()) as { key: string; path: string; size: number };
      if (r.statusCode !== 200) return `${r.statusCode} ${JSON.stringify(json)}`;
      if (json.key !== v.key || json.size !== v.bytes.byteLength || !json.path.startsWith(`${lake}/`))
        return JSON.stringify(json);
      // The zero-copy read: the app opens the file itself.
      const bytes = await readFile(json.path);
      run.bytesIn += bytes.byteLength;
      if (!bytes.equals(v.bytes)) return `the file ${json.path} does not hold the value`;
      return undefined;
    }
  }
}

/** CLIENTS loops of random requests for `ms`, on one pool of CLIENTS connections. */
async function load(socket: string, pool: Value[], ms: number, seed: number): Promise<Run> {
  const agent = new Agent({ connect: { socketPath: socket }, connections: CLIENTS, pipelining: 1 });
  const run: Run = {
    served: { 'put-new': 0, 'put-stored': 0, get: 0, 'get-range': 0, head: 0, path: 0 },
    total: 0,
    failures: new Failures(),
    bytesIn: 0,
    bytesOut: 0,
  };
  const deadline = Date.now() + ms;
  try {
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, client) => {
        const rand = prng(seed * 1000 + client);
        while (Date.now() < deadline) {
          const u = rand();
          const op = (MIX.find(([, upTo]) => u < upTo) as [Op, number])[0];
          try {
            const wrong = await one(agent, op, pool, rand, run);
            if (wrong) run.failures.add(op, wrong);
          } catch (e) {
            run.failures.add(op, `${(e as Error).name}: ${(e as Error).message}`);
          }
          run.served[op]++;
          run.total++;
        }
      }),
    );
  } finally {
    // Every connection closed: what the server still holds afterwards is its own.
    await agent.close();
  }
  return run;
}

const mb = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

describe(`tarn serve under load (${CLIENTS} clients, ${SECONDS} s)`, () => {
  let s: Sidecar;
  const pool: Value[] = [];

  beforeAll(async () => {
    // A hot cache of 4 MiB: the new small values the load PUTs fill it within the warm-up, so the
    // 20 s measured evict from it all along (a leak there shows in the RSS), and the memory it may
    // rightly hold stays well inside RSS_SLACK (the default 32 MiB would fill during the 20 s).
    s = await startSidecar(['--storage', lake, '--socket', join(dir, 'tarn.sock'), '--hot-cache', '4MiB']);
    // 32 values stored before the load, 1 KiB to 1 MiB: what the GETs, ranges, HEADs and paths ask for.
    const agent = new Agent({ connect: { socketPath: s.socket } });
    try {
      for (let i = 0; i < 32; i++) {
        const bytes = pseudoRandom(`load ${i}`, logSize(i / 31));
        const r = await request('http://tarn/v1/blobs', { dispatcher: agent, method: 'PUT', body: bytes });
        expect(r.statusCode).toBe(201);
        pool.push({ key: ((await r.body.json()) as { key: string }).key, bytes });
      }
    } finally {
      await agent.close();
    }
  });
  afterAll(() => s?.stop());

  it('serves every request right, then lets go of its descriptors and memory', {
    timeout: SECONDS * 1000 + 120_000,
  }, async () => {
    const pid = s.child.pid as number;
    await sleep(500);
    const fd0 = fdCount(pid);
    const targets0 = fdTargets(pid);
    const rss0 = rssBytes(pid);

    // The heap's working size: V8 grows its heap to what this load needs and keeps it (a process
    // that served a burst once will serve the next one). So the memory's starting level is taken
    // after a short burst of the same load; what the 20 s add on top of it is what would leak.
    const warm = await load(s.socket, pool, WARMUP * 1000, 0);
    expect(warm.failures.first).toEqual([]);
    await sleep(2000);
    const rssWarm = rssBytes(pid);

    const run = await load(s.socket, pool, SECONDS * 1000, 1);
    const rssPeak = rssBytes(pid);
    const fdAfterLoad = fdCount(pid);

    // Settle: descriptors come back as soon as the connections are closed on the server's side.
    const settle = Date.now();
    while (fdCount(pid) > fd0 && Date.now() - settle < 10_000) await sleep(100);
    const fd1 = fdCount(pid);
    await sleep(2000);
    const rss1 = rssBytes(pid);

    console.log(
      [
        `load: ${run.total} requests in ${SECONDS} s (${Math.round(run.total / SECONDS)}/s) by ${CLIENTS} clients: ${JSON.stringify(run.served)}`,
        `  ${mb(run.bytesOut)} up, ${mb(run.bytesIn)} down; ${run.failures.count} failures; warm-up: ${warm.total} requests in ${WARMUP} s`,
        `  fds: ${fd0} before, ${fdAfterLoad} as the load stopped, ${fd1} after`,
        `  rss: ${mb(rss0)} before, ${mb(rssWarm)} after the warm-up, ${mb(rssPeak)} as the load stopped, ${mb(rss1)} after`,
      ].join('\n'),
    );
    expect(run.failures.first).toEqual([]);
    expect(run.failures.count).toBe(0);
    expect(run.total).toBeGreaterThan(0);
    // Every descriptor the load opened (connections, value files, temp files) is closed again.
    expect(fd1 <= fd0 ? [] : fdTargets(pid)).toEqual(fd1 <= fd0 ? [] : targets0);
    // Memory: within RSS_SLACK of the warm level. Measured on this 2-core machine (shared, load
    // average 3 to 5): +45 MiB from the start to the warm level, then +0.6 to +5 MiB for the 20 s
    // (15 000 to 25 000 requests). After a 5 s warm-up only, the 20 s added 9 to 23 MiB, and a 60 s
    // soak (59 000 requests) ended at the same level as the 20 s runs: growth that stops (V8's heap
    // and the allocator's arenas settling), not a leak, hence the 10 s warm-up. A leak of 8 KiB per
    // PUT, about 2 KiB per request (a request's state, a value's buffer kept), put in the server by
    // hand, added 57 MiB in the 20 s: well past the slack.
    expect(mb(rss1)).toBe(rss1 <= rssWarm + RSS_SLACK ? mb(rss1) : `at most ${mb(rssWarm + RSS_SLACK)}`);
    // And the warm level itself is bounded: 64 requests of at most 1 MiB in flight, and the heap.
    expect(rssWarm - rss0).toBeLessThan(WARM_CEILING);

    // Nothing half-written left, and every stored value checks.
    expect(readdirSync(join(lake, '.tmp'))).toEqual([]);
    const verify = await tarn(['--storage', lake, '--json', 'verify']);
    expect([verify.code, verify.stderr]).toEqual([0, '']);
    const stopped = await s.stop();
    expect(stopped.code).toBe(0);
    expect(logLines(stopped.stdout).filter((l) => Number(l.level) >= 50)).toEqual([]);
  });
});
