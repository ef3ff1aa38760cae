// Every service of the bed, for tests: `import { startRedis } from '../bed/services.js'`.
export { type Kube, startKube } from './kube.js';
export { type Nginx, startNginx } from './nginx.js';
export { type Redis, startRedis } from './redis.js';
export { type S3, startS3 } from './s3.js';
export { type Sshd, startSshd } from './sshd.js';
