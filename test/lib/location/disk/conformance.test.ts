import { DiskLocation } from '@tarnjs/tarn';
import { lakeObjects } from '../../../helpers/lake.js';
import { tempDir } from '../../../helpers/tmp.js';
import { conformance } from '../conformance.js';

conformance('disk', async () => {
  const root = `${tempDir()}/lake`;
  return { location: new DiskLocation(root), objects: async () => lakeObjects(root) };
});
