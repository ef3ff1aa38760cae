import { RedisLocation } from '@tarnjs/tarn';
import { Redis as Client } from 'ioredis';
import { available } from '../../../bed/index.js';
import { startRedis } from '../../../bed/services.js';
import { conformance } from '../conformance.js';

conformance(
  'redis',
  async () => {
    const redis = await startRedis();
    const raw = new Client(redis.url);
    return {
      location: new RedisLocation({ url: redis.url, prefix: 'tarn:' }),
      // Every key of the (dedicated) server, prefix kept, the raw digest bytes in hex.
      objects: async () => {
        const keys = await raw.keysBuffer('*');
        return keys.map((k) => `${k.subarray(0, 5).toString()}${k.subarray(5).toString('hex')}`).sort();
      },
      server: redis,
      teardown: async () => {
        raw.disconnect();
        await redis.stop();
      },
    };
  },
  { maxValue: 64 << 20, remote: true, enabled: available('redis') },
);
