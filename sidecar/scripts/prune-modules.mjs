// Deletes from a production node_modules what nothing loads at run time: type declarations,
// source maps, readmes and changelogs (licences stay). Run by the image build (sidecar/Dockerfile),
// in plain Node, since the runtime base has no shell tools: node prune-modules.mjs <node_modules>
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

const DEAD = [/\.d\.[cm]?ts$/, /\.map$/, /^readme(\..*)?$/i, /^changelog(\..*)?$/i, /^history\.md$/i];

async function prune(dir) {
  let files = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files += await prune(path);
    else if (entry.isFile() && DEAD.some((re) => re.test(entry.name))) {
      await rm(path);
      files += 1;
    }
  }
  return files;
}

const root = process.argv[2];
if (!root) throw new Error('usage: node prune-modules.mjs <node_modules>');
console.log(`prune-modules: ${await prune(root)} files removed from ${root}`);
