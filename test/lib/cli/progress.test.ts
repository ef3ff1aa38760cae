import { describe, expect, it } from 'vitest';
import { Progress } from '../../../src-lib/dist/cli/progress.js';

function fakeTerminal(isTTY: boolean) {
  const written: string[] = [];
  return { isTTY, write: (s: string) => written.push(s) > 0, written } as unknown as NodeJS.WriteStream & {
    written: string[];
  };
}

describe('progress bar', () => {
  it('draws only on a terminal and only for large transfers', () => {
    expect(Progress.enabled(1 << 30, fakeTerminal(true))).toBe(true);
    expect(Progress.enabled(undefined, fakeTerminal(true))).toBe(true);
    expect(Progress.enabled(1 << 20, fakeTerminal(true))).toBe(false);
    expect(Progress.enabled(1 << 30, fakeTerminal(false))).toBe(false);
  });

  it('shows percent, bytes and rate, at most every 100 ms, and clears its line at the end', () => {
    const out = fakeTerminal(true);
    let clock = 1_000;
    const bar = new Progress('file.bin', 200 << 20, out, () => clock);
    clock += 1_000;
    bar.update(100 << 20); // the first update draws
    clock += 99;
    bar.update(150 << 20); // within 100 ms of the last draw: skipped
    clock += 1;
    bar.update(160 << 20); // 100 ms after it: drawn
    bar.done();
    expect(out.written).toHaveLength(3);
    expect(out.written[0]).toMatch(
      /file\.bin \[#{15} {15}\] {2}50% 100\.0 MiB \/ 200\.0 MiB {2}100\.0 MiB\/s/,
    );
    expect(out.written[1]).toMatch(/ {2}80% 160\.0 MiB \/ 200\.0 MiB/);
    expect(out.written[2]).toBe('\r\x1b[K');
  });
});
