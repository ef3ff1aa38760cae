import type { Readable } from 'node:stream';
import { InvalidKeyError, ServiceError } from '@tarnjs/tarn';
import type { RouteSpec } from '@tarnjs/tarn/sidecar-api';
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  FastifySchema,
  RouteGenericInterface,
} from 'fastify';
import fp from 'fastify-plugin';
import type { z } from 'zod';

/** Fields that hold value keys: a bad one is an invalid key (the client's InvalidKeyError), not just a bad field. */
const KEY_FIELDS = new Set(['params.key', 'querystring.expect', 'querystring.after']);

/** The first problem zod found, as `part.field: message` (the field a client must fix). */
function describeIssue(part: string, error: z.ZodError): { field: string; message: string } {
  const issue = error.issues[0];
  const path = issue?.path.map(String).join('.') ?? '';
  const field = path ? `${part}.${path}` : part;
  if (issue?.code === 'unrecognized_keys') {
    return { field, message: `${field}: unknown ${issue.keys.map((k) => `"${k}"`).join(', ')}` };
  }
  return { field, message: `${field}: ${issue?.message ?? 'invalid'}` };
}

/**
 * Route schemas are zod schemas (from `ROUTES`): fastify hands each part of the request to its
 * schema and keeps the parsed (coerced, transformed) value. A failure is a 400 naming the field.
 */
export const validation = fp(async (app: FastifyInstance) => {
  app.setValidatorCompiler(({ schema, httpPart }) => {
    const zod = schema as z.ZodType;
    const part = httpPart ?? 'request';
    return (data: unknown) => {
      const result = zod.safeParse(data);
      if (result.success) return { value: result.data };
      const { field, message } = describeIssue(part, result.error);
      const value = (data as Record<string, unknown> | null)?.[field.slice(part.length + 1)];
      return {
        error: KEY_FIELDS.has(field)
          ? new InvalidKeyError(value, `${field} must be 8 to 128 hex digits`)
          : new ServiceError('TARN_BAD_REQUEST', message),
      };
    };
  });
  // Responses are not schema-checked on the way out (they are built from the library's own
  // results); a route that names a response schema is serialised as plain JSON, never by
  // fast-json-stringify, which does not read zod schemas.
  app.setSerializerCompiler(() => (data: unknown) => JSON.stringify(data));
});

/** What a handler of a route spec receives: its params, query and body as parsed by their schemas. */
export interface RouteInput<S extends RouteSpec> extends RouteGenericInterface {
  Params: S['params'] extends z.ZodType ? z.output<S['params']> : unknown;
  Querystring: S['querystring'] extends z.ZodType ? z.output<S['querystring']> : unknown;
  Body: S['body'] extends 'bytes' ? Readable : S['body'] extends z.ZodType ? z.output<S['body']> : unknown;
}

export type Handler<S extends RouteSpec> = (
  request: FastifyRequest<RouteInput<S>>,
  reply: FastifyReply,
) => Promise<unknown>;

/** The fastify schema of a route spec (zod schemas, read by the validator compiler above). */
export function schemaOf(spec: RouteSpec): FastifySchema {
  const schema: FastifySchema = {};
  if (spec.params) schema.params = spec.params;
  if (spec.querystring) schema.querystring = spec.querystring;
  if (spec.body && spec.body !== 'bytes') schema.body = spec.body;
  return schema;
}
