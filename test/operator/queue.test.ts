import { WorkQueue } from '@tarnjs/operator';
import { describe, expect, it } from 'vitest';

describe('WorkQueue', () => {
  it('queues a key once however often it is added, and never hands it to two workers at once', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('a');
    q.add('b');
    expect(q.length).toBe(2);
    const first = await q.next();
    expect(first).toBe('a');
    q.add('a'); // changed while being worked on: back once done, not now
    expect(await q.next()).toBe('b');
    const waiting = q.next();
    let got: string | undefined;
    void waiting.then((k) => {
      got = k;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(got).toBeUndefined();
    q.done('a');
    expect(await waiting).toBe('a');
    q.shutdown();
  });

  it('backs off per key, doubling, and forgets on success', async () => {
    const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 40 });
    expect([q.retry('k'), q.retry('k'), q.retry('k'), q.retry('k')]).toEqual([10, 20, 40, 40]);
    expect(q.failures('k')).toBe(4);
    q.forget('k');
    expect(q.failures('k')).toBe(0);
    const t = Date.now();
    expect(await q.next()).toBe('k'); // the delayed add arrives
    expect(Date.now() - t).toBeLessThan(1000);
    q.shutdown();
  });

  it('limits the rate across keys', async () => {
    const q = new WorkQueue({ ratePerSecond: 20, burst: 2 });
    for (const k of ['a', 'b', 'c', 'd']) q.add(k);
    const t = Date.now();
    for (let i = 0; i < 4; i++) {
      const k = (await q.next()) as string;
      q.done(k);
    }
    // Two from the burst, then one each 50 ms.
    expect(Date.now() - t).toBeGreaterThanOrEqual(90);
    q.shutdown();
    expect(await q.next()).toBeUndefined();
  });
});
