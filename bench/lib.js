// Timing helpers shared by the benchmark cases.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';

export const MiB = 1 << 20;

/** Runs `fn` `rounds` times (fresh state from `setup` each time) and returns the median seconds. */
export async function median(rounds, setup, fn) {
  const times = [];
  for (let r = 0; r < rounds; r++) {
    const state = await setup?.(r);
    const t = process.hrtime.bigint();
    await fn(state);
    times.push(Number(process.hrtime.bigint() - t) / 1e9);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** Runs `count` async tasks with at most `concurrency` in flight. */
export async function pool(count, concurrency, task) {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** Wall seconds of an external command (median of rounds). */
export function timeCommand(cmd, args, rounds = 3) {
  const times = [];
  for (let r = 0; r < rounds; r++) {
    const t = process.hrtime.bigint();
    const res = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    if (res.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${res.stderr}`);
    times.push(Number(process.hrtime.bigint() - t) / 1e9);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

export function scratch(base, prefix) {
  const dir = mkdtempSync(join(base, prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function machine() {
  const fsType = (path) => {
    try {
      return execFileSync('df', ['-T', path]).toString().split('\n')[1]?.split(/\s+/)[1];
    } catch {
      return 'unknown';
    }
  };
  return {
    cpu: `${cpus().length} x ${cpus()[0]?.model}`,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    openssl: spawnSync('openssl', ['version']).stdout?.toString().trim(),
    tmp: fsType('/tmp'),
    shm: fsType('/dev/shm'),
  };
}

/** A table row: label, seconds, derived rate, and ratios against named baselines. */
export function row(label, seconds, rate) {
  return { label, seconds: Number(seconds.toFixed(4)), rate };
}

export function print(title, rows, ratios) {
  console.log(`\n## ${title}`);
  const w = Math.max(...rows.map((r) => r.label.length));
  for (const r of rows)
    console.log(`  ${r.label.padEnd(w)}  ${r.seconds.toFixed(3).padStart(8)} s  ${r.rate}`);
  for (const [label, value] of ratios) console.log(`  ratio ${label}: ${value.toFixed(2)}x`);
}

/**
 * A fresh XFS with reflinks on a sparse image under /tmp, mounted through a loop device (root and
 * xfsprogs needed; scripts/provision.sh installs it): where a disk lake clones large files.
 * Undefined where it cannot be mounted.
 */
export function xfsMount(sizeMiB) {
  const dir = mkdtempSync(join('/tmp', 'bench-xfs-'));
  const image = `${dir}.img`;
  const run = (cmd, args) => execFileSync(cmd, args, { stdio: 'pipe' });
  try {
    run('truncate', ['-s', `${sizeMiB}M`, image]);
    run('mkfs.xfs', ['-q', '-m', 'reflink=1', image]);
    run('mount', ['-o', 'loop', image, dir]);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    rmSync(image, { force: true });
    console.warn(`large/xfs skipped: cannot mount an XFS image (${String(e.message).split('\n')[0]})`);
    return undefined;
  }
  return {
    dir,
    remove: () => {
      run('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
      rmSync(image, { force: true });
    },
  };
}
