import { z } from 'zod';

/**
 * The declarative description of a storage: the digest, and a tree of locations.
 * Today the tree has one kind of node, a disk lake; remote locations and combinators join
 * it as further members of the `kind` union, so every config written now stays valid.
 */
const size = z.union([z.number().int().nonnegative(), z.string().regex(/^\s*\d+(\.\d+)?\s*[a-zA-Z]*\s*$/)]);

export const diskConfig = z
  .object({
    kind: z.literal('disk'),
    root: z.string().min(1).describe('Folder of the lake; relative paths are relative to the config file'),
    levels: z.array(z.number().int()).optional(),
    maxSize: size.optional().describe('Byte cap of a new lake (config.yml max_size), e.g. 500G'),
    minFreeSpace: size
      .optional()
      .describe('Free space to leave on the filesystem (config.yml free_disk_size)'),
    fsync: z.boolean().optional(),
    create: z.boolean().optional(),
  })
  .strict();

export const locationConfig = z.discriminatedUnion('kind', [diskConfig]);

export const storageConfig = z
  .object({
    algorithm: z.string().optional(),
    location: locationConfig,
  })
  .strict();

export type DiskConfig = z.infer<typeof diskConfig>;
export type LocationConfig = z.infer<typeof locationConfig>;
export type StorageConfig = z.infer<typeof storageConfig>;
