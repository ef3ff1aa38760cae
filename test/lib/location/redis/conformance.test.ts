import { RedisLocation } from '@tarnjs/tarn';
import { available } from '../../../bed/index.js';
import { startRedis } from '../../../bed/services.js';
import { conformance } from '../conformance.js';

if (available('redis')) {
  conformance(
    'redis',
    async () => {
      const redis = await startRedis();
      return {
        location: new RedisLocation({ url: redis.url, prefix: 'tarn:' }),
        teardown: () => redis.stop(),
      };
    },
    { maxValue: 64 << 20 },
  );
}
