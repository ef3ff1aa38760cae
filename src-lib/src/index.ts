export {
  SERVE_OPTIONS,
  type ServeCommandOptions,
  type ServeFlags,
  type SidecarModule,
  serveFlagsOf,
} from './cli/serve.js';
export {
  type BuildOptions,
  buildLocation,
  fromConfig,
  fromConfigFile,
  loadConfigFile,
  openConfig,
  parseConfig,
  parseConfigText,
} from './config/load.js';
export {
  configJsonSchema,
  type DiskConfig,
  diskConfig,
  type FanoutConfig,
  type LevelConfig,
  type LevelsConfig,
  type LocationConfig,
  type LocationNode,
  locationNode,
  type NginxConfig,
  type RedisConfig,
  type RefConfig,
  type S3Config,
  type ScpConfig,
  type Secret,
  type ServeConfig,
  type SftpConfig,
  type SidecarConfig,
  type SmallConfig,
  type StorageConfig,
  serveConfig,
  storageConfig,
} from './config/schema.js';
export { type Digest, digest, normalizeKey } from './digest.js';
export {
  AbortError,
  CollisionError,
  ConfigError,
  ERRORS,
  type ErrorCode,
  type ErrorRow,
  type ErrorStatus,
  ForbiddenError,
  InvalidKeyError,
  IoError,
  isSystemError,
  KeyMismatchError,
  LeaseLostError,
  NoLocalCopyError,
  NotFoundError,
  PartialDeleteError,
  ReadError,
  RefusedError,
  SERVICE_CODES,
  type ServiceCode,
  ServiceError,
  SocketInUseError,
  SourceError,
  StorageCorruption,
  statusOf,
  TarnError,
  UnsupportedError,
  UsageError,
  WriteError,
} from './errors.js';
export {
  Fanout,
  type FanoutFault,
  type FanoutOptions,
  type FanoutStats,
} from './location/combinators/fanout.js';
export {
  Level,
  type LevelFault,
  type LevelOptions,
  Levels,
  type LevelsOptions,
  type LevelsStats,
} from './location/combinators/levels.js';
export { Small, type SmallOptions } from './location/combinators/small.js';
export type {
  Child,
  ChildUse,
  CommitResult,
  Flags,
  Housekeeping,
  IngestOptions,
  IngestResult,
  Json,
  Lease,
  Leasing,
  Location,
  OpOptions,
  ReadOpOptions,
  Stage,
  StageOptions,
  Value,
} from './location/contract.js';
export {
  allReachable,
  type DescribeOptions,
  describeTree,
  type LocationDescription,
  type StorageDescription,
} from './location/describe.js';
export {
  DiskLocation as Disk,
  DiskLocation,
  type DiskOptions,
  type ForeignEntry,
  type ForeignReason,
} from './location/disk/index.js';
export { type LocationLike, toLocation } from './location/like.js';
export { NginxLocation as Nginx, NginxLocation, type NginxLocationOptions } from './location/nginx/index.js';
export { RedisLocation, type RedisLocationOptions } from './location/redis/index.js';
export { RemoteError } from './location/remote-error.js';
export { S3Location as S3, S3Location, type S3LocationOptions } from './location/s3/index.js';
export { errorOfProblem, SidecarError, type SidecarTransportOptions } from './location/sidecar/http.js';
export {
  SidecarLocation as Sidecar,
  SidecarLocation,
  type SidecarLocationOptions,
  SidecarMemoIndex,
} from './location/sidecar/index.js';
export type { SpillOptions } from './location/spill.js';
export { type Spool, type SpoolOptions, SpoolStage } from './location/spool.js';
export { fingerprintOf, type SshOptions } from './location/ssh/options.js';
export { SCPLocation as SCP, SCPLocation, type SCPOptions } from './location/ssh/scp.js';
export { SFTPLocation as SFTP, SFTPLocation } from './location/ssh/sftp.js';
export { canLease, type TreeEntry, walkTree } from './location/tree.js';
export { cacheKey, encode as encodeCacheKey } from './memo/encode.js';
export { CacheKeyError, MemoError } from './memo/errors.js';
export { readIndexEntry, writeIndexEntry } from './memo/index-entry.js';
export { isMarked, markModuleUnstable, markUnstable } from './memo/registry.js';
export { jsonSerializer, type Serializer, v8Serializer } from './memo/serializers.js';
export {
  type CachedFunction,
  type CacheStats,
  type SmartCacheOptions,
  smartCache,
} from './memo/smart-cache.js';
export { defaultIndexOf, leasingOf, type MemoTarget } from './memo/stores.js';
export type { WriteSource } from './source.js';
export {
  HashKeyStorage,
  type PutResult,
  type ReadOptions,
  type StorageOptions,
  type WriteOptions,
} from './storage.js';
export { StoredValue } from './stored-value.js';
export { formatSize, parseSize } from './util/size.js';
export { FileValue } from './value.js';
export type { CorruptCopy, VerifyOptions, VerifyReport } from './verify.js';
