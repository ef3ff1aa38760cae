export { buildLocation, fromConfig, fromConfigFile, loadConfigFile, parseConfig } from './config/load.js';
export {
  type DiskConfig,
  diskConfig,
  type LocationConfig,
  locationConfig,
  type StorageConfig,
  storageConfig,
} from './config/schema.js';
export { type Digest, digest } from './digest.js';
export {
  AbortError,
  CollisionError,
  ConfigError,
  InvalidKeyError,
  KeyMismatchError,
  NotFoundError,
  ReadError,
  RefusedError,
  SourceError,
  StorageCorruption,
  TarnError,
  WriteError,
} from './errors.js';
export { Fanout } from './location/combinators/fanout.js';
export { Small, type SmallOptions } from './location/combinators/small.js';
export { DiskLocation, type DiskOptions } from './location/disk/index.js';
export { NginxLocation, type NginxLocationOptions } from './location/nginx/index.js';
export { RedisLocation, type RedisLocationOptions } from './location/redis/index.js';
export { RemoteError } from './location/remote-error.js';
export { S3Location, type S3LocationOptions } from './location/s3/index.js';
export { type Spool, type SpoolOptions, SpoolStage } from './location/spool.js';
export { fingerprintOf, type SshOptions } from './location/ssh/options.js';
export { SCPLocation, type SCPOptions } from './location/ssh/scp.js';
export { SFTPLocation } from './location/ssh/sftp.js';
export type { CommitResult, Location, OpOptions, Stage, StageOptions, Value } from './location.js';
export type { WriteSource } from './source.js';
export {
  HashKeyStorage,
  type ReadOptions,
  type StorageOptions,
  type VerifyReport,
  type WriteOptions,
} from './storage.js';
export { StoredValue } from './stored-value.js';
export { FileValue } from './value.js';
