import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configJsonSchema } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';

const ARTEFACT = fileURLToPath(new URL('../../../src-lib/dist/tarn-config.schema.json', import.meta.url));

type Schema = Record<string, unknown>;

/**
 * A small validator for the JSON Schema keywords the artefact uses; enough to show that the schema
 * means what the zod schema means, without a JSON Schema library in the repo.
 */
function valid(schema: Schema, value: unknown, root: Schema): boolean {
  if (typeof schema.$ref === 'string') {
    const target = (root.$defs as Record<string, Schema>)[schema.$ref.replace('#/$defs/', '')];
    if (!target || !valid(target, value, root)) return false;
  }
  if (Array.isArray(schema.anyOf) && !schema.anyOf.some((s: Schema) => valid(s, value, root))) return false;
  if (Array.isArray(schema.oneOf) && schema.oneOf.filter((s: Schema) => valid(s, value, root)).length !== 1)
    return false;
  if ('const' in schema && value !== schema.const) return false;
  const type = schema.type;
  if (type === 'string') {
    if (typeof value !== 'string') return false;
    if (typeof schema.minLength === 'number' && value.length < schema.minLength) return false;
    if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern).test(value)) return false;
  }
  if (type === 'integer' && !Number.isInteger(value)) return false;
  if (type === 'boolean' && typeof value !== 'boolean') return false;
  if (type === 'array') {
    if (!Array.isArray(value)) return false;
    if (typeof schema.minItems === 'number' && value.length < schema.minItems) return false;
    if (schema.items && !value.every((v) => valid(schema.items as Schema, v, root))) return false;
  }
  if (type === 'object') {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
    const obj = value as Record<string, unknown>;
    const props = (schema.properties ?? {}) as Record<string, Schema>;
    if (((schema.required ?? []) as string[]).some((k) => !(k in obj))) return false;
    for (const [k, v] of Object.entries(obj)) {
      const s = props[k] ?? schema.additionalProperties;
      if (s === false) return false;
      if (s && typeof s === 'object' && !valid(s as Schema, v, root)) return false;
    }
  }
  return true;
}

describe('JSON Schema of the config', () => {
  it('is built into dist as tarn-config.schema.json, equal to configJsonSchema()', () => {
    expect(existsSync(ARTEFACT), 'run `npm run build` to write it').toBe(true);
    expect(JSON.parse(readFileSync(ARTEFACT, 'utf8'))).toEqual(configJsonSchema());
  });

  it('is draft 2020-12 with a definition for every kind, recursion by $ref', () => {
    const schema = configJsonSchema();
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    const defs = schema.$defs as Record<string, Schema>;
    const kinds = Object.values(defs)
      .map((d) => ((d.properties as Record<string, Schema> | undefined)?.kind as Schema | undefined)?.const)
      .filter(Boolean);
    expect(kinds.sort()).toEqual([
      'disk',
      'fanout',
      'levels',
      'nginx',
      'redis',
      'ref',
      's3',
      'scp',
      'sftp',
      'sidecar',
      'small',
    ]);
    expect(JSON.stringify(defs.Fanout)).toContain('"$ref":"#/$defs/Location"');
    expect(defs.Disk?.description).toMatch(/lake folder/);
    expect(JSON.stringify(schema)).not.toMatch(/__schema/);
  });

  it('accepts a sample config and rejects typos and inline secrets', () => {
    const schema = configJsonSchema();
    const sample = {
      algorithm: 'sha256',
      locations: { hdd: '/mount/hdd/lake' },
      location: {
        kind: 'levels',
        levels: [
          {
            kind: 'small',
            maxSize: '10MiB',
            location: { kind: 'redis', url: 'redis://cache', password: { env: 'PW' } },
          },
          { location: { ref: 'hdd' }, replicate: false },
          ['/a', '/b'],
        ],
      },
    };
    expect(valid(schema, sample, schema)).toBe(true);
    expect(valid(schema, { location: { kind: 'disk', root: '/a', maxsize: 1 } }, schema)).toBe(false);
    expect(valid(schema, { location: { kind: 'redis', password: 'x' } }, schema)).toBe(false);
    expect(valid(schema, { location: { kind: 'dsik', root: '/a' } }, schema)).toBe(false);
  });

  it("refuses credentials in a URL's user-info, as the zod schema does", () => {
    const schema = configJsonSchema();
    const ok = (location: unknown) => valid(schema, { location }, schema);
    expect(ok({ kind: 'nginx', url: 'http://user:pw@cdn/lake/' })).toBe(false);
    expect(ok({ kind: 's3', bucket: 'b', endpoint: 'http://key:secret@minio:9000' })).toBe(false);
    expect(ok({ kind: 'redis', url: 'redis://:pw@cache' })).toBe(false);
    expect(ok({ kind: 'redis', url: 'redis://cache?password=pw' })).toBe(false);
    expect(ok({ kind: 'nginx', url: 'https://cdn/%40team/lake/?sig=a@b' })).toBe(true);
    expect(ok({ kind: 's3', bucket: 'b', endpoint: 'http://minio:9000' })).toBe(true);
    expect(ok({ kind: 'redis', url: 'redis://cache:6379/0?family=6' })).toBe(true);
  });
});
