import { DiskLocation, HashKeyStorage, SidecarLocation } from '@tarnjs/tarn';
import { lakeObjects } from '../../../helpers/lake.js';
import { tempDir } from '../../../helpers/tmp.js';
import { conformance } from '../conformance.js';
import { startSidecar } from './server.js';

// The whole Location contract through the socket: the sidecar's app on a real Unix socket, over a
// disk lake, and the client over undici. Frozen = every request held before its handler.
conformance(
  'sidecar over a disk lake',
  async () => {
    const dir = tempDir();
    const root = `${dir}/lake`;
    const server = await startSidecar(dir, new HashKeyStorage(new DiskLocation(root)));
    return {
      location: new SidecarLocation(server.socket),
      objects: async () => lakeObjects(root),
      server,
      teardown: () => server.close(),
    };
  },
  { remote: true },
);
