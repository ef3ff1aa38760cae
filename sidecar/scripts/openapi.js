// Writes the sidecar's OpenAPI 3.1 document into the build (dist/openapi.json, exported as
// `@tarnjs/sidecar/openapi.json`): the same document `GET /v1/openapi.json` serves. Run after tsc.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openApiDocument } from '../dist/openapi.js';

const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'openapi.json');
writeFileSync(out, `${JSON.stringify(openApiDocument(), null, 2)}\n`);
