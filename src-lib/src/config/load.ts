import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { ConfigError } from '../errors.js';
import { DiskLocation } from '../location/disk/index.js';
import type { Location } from '../location.js';
import { HashKeyStorage } from '../storage.js';
import { configErrorFrom } from '../util/zod.js';
import { type LocationConfig, type StorageConfig, storageConfig } from './schema.js';

/** Validates a parsed config; the ConfigError names the path of the first bad field. */
export function parseConfig(raw: unknown, where = 'config'): StorageConfig {
  const parsed = storageConfig.safeParse(raw);
  if (!parsed.success) throw configErrorFrom(parsed.error, where);
  return parsed.data;
}

/** Reads a YAML or JSON config file. */
export async function loadConfigFile(file: string): Promise<StorageConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read ${file}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (e) {
    throw new ConfigError(`${file} is not valid YAML or JSON: ${(e as Error).message}`);
  }
  return parseConfig(raw, file);
}

export interface BuildOptions {
  /** Folder that relative paths in the config are relative to. */
  base?: string;
  /** Override `create` for disk lakes (the CLI's read commands never create a lake). */
  create?: boolean;
}

export function buildLocation(config: LocationConfig, options: BuildOptions = {}): Location {
  switch (config.kind) {
    case 'disk':
      return new DiskLocation(resolve(options.base ?? '.', config.root), {
        levels: config.levels,
        maxSize: config.maxSize,
        minFreeSpace: config.minFreeSpace,
        fsync: config.fsync,
        create: options.create ?? config.create,
      });
  }
}

export function fromConfig(config: StorageConfig, options: BuildOptions = {}): HashKeyStorage {
  return new HashKeyStorage(buildLocation(config.location, options), { algorithm: config.algorithm });
}

export async function fromConfigFile(file: string, options: BuildOptions = {}): Promise<HashKeyStorage> {
  return fromConfig(await loadConfigFile(file), { base: dirname(resolve(file)), ...options });
}
