import { DiskLocation, HashKeyStorage, NginxLocation } from '@tarnjs/tarn';
import { available } from '../../../bed/index.js';
import { startNginx } from '../../../bed/services.js';
import { tempDir } from '../../../helpers/tmp.js';
import { conformance } from '../conformance.js';

for (const format of ['json', 'html'] as const) {
  conformance(
    `nginx (${format} autoindex)`,
    async () => {
      const root = `${tempDir()}/lake`;
      const lake = new HashKeyStorage(new DiskLocation(root));
      const nginx = await startNginx(root, { format });
      return {
        location: new NginxLocation(nginx.url),
        seed: (data) => lake.write(data),
        server: nginx,
        teardown: () => nginx.stop(),
      };
    },
    { readOnly: true, remote: true, enabled: available('nginx') },
  );
}
