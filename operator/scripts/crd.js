// Writes crds/tarnstorages.tarn.dev.yaml (and the chart's copy) from the zod schema (npm run docs); with
// --check (npm run build) fails when a committed file differs from what the schema generates (as controller-gen's
// users check theirs in CI).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crdYaml } from '../dist/crd/generate.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const targets = [
  join(repo, 'crds', 'tarnstorages.tarn.dev.yaml'),
  join(repo, 'charts', 'tarn', 'crds', 'tarnstorages.tarn.dev.yaml'),
];
const yaml = crdYaml();
if (process.argv.includes('--check')) {
  const stale = targets.filter((t) => {
    try {
      return readFileSync(t, 'utf8') !== yaml;
    } catch {
      return true;
    }
  });
  if (stale.length > 0) {
    console.error(`stale CRD (run npm run build and commit): ${stale.join(', ')}`);
    process.exit(1);
  }
} else {
  for (const t of targets) writeFileSync(t, yaml);
}
