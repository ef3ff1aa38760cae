// The test bed: real servers on loopback, started by the tests that need them.
export {
  available,
  availableLocally,
  binary,
  CACHE,
  CACHE_BIN,
  findBinary,
  inCI,
  PROGRAMS,
  provider,
  type ServiceName,
} from './binaries.js';
export {
  freePort,
  httpReady,
  probe,
  processAlive,
  type Service,
  ServiceError,
  startService,
} from './process.js';
