// A sidecar's app over one disk lake, in a process of its own (started in another mount namespace
// by the zero-copy tests). argv: <lake> <socket>. Prints `listening` once it serves; SIGTERM stops it.

import { buildApp, settingsOf, Trees } from '@tarnjs/sidecar';
import { DiskLocation, HashKeyStorage } from '@tarnjs/tarn';

const [lake, socket] = process.argv.slice(2);
const settings = { ...settingsOf(undefined, process.cwd(), socket), allowDelete: true };
const trees = new Trees(settings.hotCache);
trees.swap(new HashKeyStorage(new DiskLocation(lake)), undefined);
const app = await buildApp({
  trees,
  settings,
  readiness: () => ({ ready: true, generation: 1, loadedAt: null, lastReload: null }),
});
await app.listen({ path: socket });
process.stdout.write('listening\n');
process.on('SIGTERM', async () => {
  await app.close();
  await trees.close();
  process.exit(0);
});
