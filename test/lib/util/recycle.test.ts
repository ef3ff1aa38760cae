import { describe, expect, it } from 'vitest';
import { BufferPool, pin, recycle } from '../../../src-lib/dist/util/recycle.js';

describe('BufferPool', () => {
  it('reuses the memory of a recycled chunk, once, and of nothing else', () => {
    const pool = new BufferPool(1024, 2);
    const a = pool.take();
    const b = pool.take(100);
    expect(b.byteLength).toBe(100);
    expect(a.buffer).not.toBe(b.buffer);
    recycle(b.subarray(0, 10)); // any view of the memory hands it back
    recycle(b); // twice: no effect
    const c = pool.take();
    expect(c.buffer).toBe(b.buffer);
    const d = pool.take();
    expect(d.buffer).not.toBe(b.buffer);
  });

  it('never reuses a pinned chunk, nor a buffer it did not lend', () => {
    const pool = new BufferPool(1024);
    const a = pool.take();
    pin(a);
    recycle(a);
    expect(pool.take().buffer).not.toBe(a.buffer);
    recycle(Buffer.alloc(1024)); // not lent: ignored
  });

  it('keeps at most `keep` buffers', () => {
    const pool = new BufferPool(16, 1);
    const [a, b] = [pool.take(), pool.take()];
    recycle(a);
    recycle(b);
    const first = pool.take();
    const second = pool.take();
    expect(first.buffer).toBe(a.buffer);
    expect(second.buffer).not.toBe(b.buffer);
  });
});
