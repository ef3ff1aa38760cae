import { DiskLocation } from '@tarnjs/tarn';
import { tempDir } from '../../../helpers/tmp.js';
import { conformance } from '../conformance.js';

conformance('disk', async () => ({ location: new DiskLocation(`${tempDir()}/lake`) }));
