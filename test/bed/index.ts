// The test bed: real servers on loopback, started by the tests that need them.
export {
  available,
  binary,
  CACHE,
  CACHE_BIN,
  findBinary,
  PROGRAMS,
  provider,
  type ServiceName,
} from './binaries.js';
export { freePort, httpReady, probe, type Service, ServiceError, startService } from './process.js';
