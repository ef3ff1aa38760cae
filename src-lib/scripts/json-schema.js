// Writes dist/tarn-config.schema.json from the built schema, so editors and the operator's CRD
// validate config files against exactly what the library accepts. Runs after `tsc -b`.
import { writeFile } from 'node:fs/promises';
import { configJsonSchema } from '../dist/config/schema.js';

const out = new URL('../dist/tarn-config.schema.json', import.meta.url);
await writeFile(out, `${JSON.stringify(configJsonSchema(), null, 2)}\n`);
