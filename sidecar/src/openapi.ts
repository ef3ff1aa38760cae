import { createRequire } from 'node:module';
import {
  API_VERSION,
  HEADERS,
  problem,
  type ResponseSpec,
  ROUTES,
  type RouteSpec,
} from '@tarnjs/tarn/sidecar-api';
import { z } from 'zod';

type Json = Record<string, unknown>;

const PROBLEM = 'application/problem+json';

/**
 * JSON Schemas of zod schemas, for one document: schemas named with `.meta({ id })` become
 * `components.schemas` entries, referenced where used.
 */
class Schemas {
  readonly components: Record<string, Json> = {};

  of(schema: z.ZodType, io: 'input' | 'output'): Json {
    const json = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as Json;
    delete json.$schema;
    const defs = (json.$defs ?? {}) as Record<string, Json>;
    delete json.$defs;
    for (const [id, def] of Object.entries(defs)) this.#add(id, def);
    return rewrite(json) as Json;
  }

  #add(id: string, def: Json): void {
    const rewritten = rewrite(def) as Json;
    const existing = this.components[id];
    if (existing && JSON.stringify(existing) !== JSON.stringify(rewritten))
      throw new Error(`two different schemas are named ${id}`);
    this.components[id] = rewritten;
  }
}

/** `#/$defs/X` (zod's) to `#/components/schemas/X` (OpenAPI's), everywhere in a schema. */
function rewrite(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(rewrite);
  if (node === null || typeof node !== 'object') return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node)) {
    out[k] =
      k === '$ref' && typeof v === 'string' ? v.replace(/^#\/\$defs\//, '#/components/schemas/') : rewrite(v);
  }
  return out;
}

function parameters(spec: RouteSpec, schemas: Schemas): Json[] {
  const out: Json[] = [];
  const fields = (shape: z.ZodObject | undefined, where: 'path' | 'query') => {
    for (const [name, field] of Object.entries(shape?.shape ?? {}) as Array<[string, z.ZodType]>) {
      const schema = schemas.of(field, 'input');
      const description = schema.description;
      delete schema.description;
      out.push({
        name,
        in: where,
        required: where === 'path' || !field.safeParse(undefined).success,
        ...(description ? { description } : {}),
        schema,
      });
    }
  };
  fields(spec.params, 'path');
  fields(spec.querystring, 'query');
  for (const [name, description] of Object.entries(spec.headers ?? {}))
    out.push({ name, in: 'header', required: false, description, schema: { type: 'string' } });
  return out;
}

function response(r: ResponseSpec, schemas: Schemas): Json {
  if ('json' in r) {
    const schema = schemas.of(r.json, 'output');
    const type = schema.$ref === '#/components/schemas/Problem' ? PROBLEM : 'application/json';
    return { description: r.description, content: { [type]: { schema } } };
  }
  if ('bytes' in r)
    return {
      description: r.description,
      content: {
        'application/octet-stream': {
          schema: { type: 'string', contentMediaType: 'application/octet-stream' },
        },
      },
    };
  if ('ndjson' in r)
    return {
      description: `${r.description}: one JSON document per line, each as this schema`,
      content: { 'application/x-ndjson': { schema: schemas.of(r.ndjson, 'output') } },
    };
  return { description: r.description };
}

function operation(spec: RouteSpec, schemas: Schemas): Json {
  const op: Json = { operationId: spec.id, summary: spec.summary };
  const params = parameters(spec, schemas);
  if (params.length > 0) op.parameters = params;
  if (spec.body === 'bytes')
    op.requestBody = {
      required: true,
      description: 'The bytes, streamed; any content type (or none)',
      content: {
        'application/octet-stream': {
          schema: { type: 'string', contentMediaType: 'application/octet-stream' },
        },
      },
    };
  else if (spec.body)
    op.requestBody = {
      required: true,
      content: { 'application/json': { schema: schemas.of(spec.body, 'input') } },
    };
  const responses: Json = {};
  for (const [status, r] of Object.entries(spec.responses)) responses[status] = response(r, schemas);
  // Any route can also refuse a request that does not fit its schema, or fail inside.
  responses['400'] ??= response(
    { description: 'A parameter or body does not fit the schema', json: problem },
    schemas,
  );
  responses.default = response({ description: 'An error (its code says which)', json: problem }, schemas);
  op.responses = responses;
  return op;
}

function version(): string {
  try {
    return (createRequire(import.meta.url)('../package.json') as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

/** The API as an OpenAPI 3.1 document, generated from `ROUTES` (the contract both sides use). */
export function openApiDocument(): Json {
  const schemas = new Schemas();
  const paths: Record<string, Json> = {};
  for (const spec of Object.values(ROUTES) as RouteSpec[]) {
    const path = spec.url.replace(/:([A-Za-z]+)/g, '{$1}');
    paths[path] ??= {};
    (paths[path] as Json)[spec.method.toLowerCase()] = operation(spec, schemas);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'tarn sidecar',
      version: version(),
      description: `The tarn sidecar's API ${API_VERSION}, served on a Unix socket. Every error is RFC 9457 application/problem+json with a stable \`code\`; every response carries \`${HEADERS.requestId}\`.`,
    },
    paths,
    components: { schemas: schemas.components },
  };
}
