import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROUTES } from '@tarnjs/tarn/sidecar-api';
import { describe, expect, it } from 'vitest';
import { openApiDocument } from '../../sidecar/dist/openapi.js';

type Doc = {
  openapi: string;
  paths: Record<
    string,
    Record<
      string,
      {
        operationId: string;
        parameters?: Array<{ name: string; in: string; required: boolean }>;
        requestBody?: unknown;
        responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }> }>;
      }
    >
  >;
  components: { schemas: Record<string, unknown> };
};

describe('the OpenAPI document', () => {
  const doc = openApiDocument() as Doc;

  it('is OpenAPI 3.1 with one operation per route of ROUTES', () => {
    expect(doc.openapi).toBe('3.1.0');
    const ops = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => `${method.toUpperCase()} ${path} ${op.operationId}`),
    );
    const routes = Object.values(ROUTES).map(
      (r) => `${r.method} ${r.url.replace(/:(\w+)/g, '{$1}')} ${r.id}`,
    );
    expect(ops.sort()).toEqual(routes.sort());
  });

  it('describes parameters, bodies and named schemas, and every error as a problem', () => {
    const get = doc.paths['/v1/blobs/{key}']?.get;
    expect(get?.parameters).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'key', in: 'path', required: true }),
        expect.objectContaining({ name: 'verify', in: 'query', required: false }),
        expect.objectContaining({ name: 'range', in: 'header' }),
      ]),
    );
    const put = doc.paths['/v1/blobs']?.put;
    expect(put?.requestBody).toMatchObject({ content: { 'application/octet-stream': {} } });
    expect(put?.responses['201']?.content?.['application/json']?.schema.$ref).toBe(
      '#/components/schemas/PutResult',
    );
    expect(put?.responses['422']?.content?.['application/problem+json']?.schema.$ref).toBe(
      '#/components/schemas/Problem',
    );
    for (const id of ['PutResult', 'PathResult', 'FetchRequest', 'LeaseRequest', 'Problem', 'Readiness'])
      expect(doc.components.schemas[id]).toBeDefined();
    // No dangling reference.
    const refs = JSON.stringify(doc).match(/#\/components\/schemas\/\w+/g) ?? [];
    for (const ref of refs) expect(doc.components.schemas[ref.split('/').pop() as string]).toBeDefined();
    expect(JSON.stringify(doc)).not.toContain('$defs');
  });

  it('is written into the build as served', () => {
    const built = JSON.parse(
      readFileSync(join(import.meta.dirname, '../../sidecar/dist/openapi.json'), 'utf8'),
    );
    expect(built).toEqual(doc);
  });
});
