// Typed helpers shared by the TypeScript cases (bench/lib.js has no types, and bench/*.ts is
// type-checked by `tsc -p test`).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export interface Row {
  label: string;
  seconds: number;
  rate: string;
}

export const row = (label: string, seconds: number, rate: string): Row => ({
  label,
  seconds: Number(seconds.toFixed(4)),
  rate,
});

export function print(title: string, rows: Row[], ratios: Array<[string, number]>) {
  console.log(`\n## ${title}`);
  const w = Math.max(...rows.map((r) => r.label.length));
  for (const r of rows)
    console.log(`  ${r.label.padEnd(w)}  ${r.seconds.toFixed(3).padStart(8)} s  ${r.rate}`);
  for (const [label, value] of ratios) console.log(`  ratio ${label}: ${value.toFixed(2)}x`);
}

export function scratch(base: string, prefix: string) {
  const dir = mkdtempSync(join(base, prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function secondsOf(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

export const medianOf = (times: number[]) => {
  const t = [...times].sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)] as number;
};

export function fsType(path: string): string {
  const r = spawnSync('df', ['-T', path]);
  return r.stdout?.toString().split('\n')[1]?.split(/\s+/)[1] ?? 'unknown';
}
