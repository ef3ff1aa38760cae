import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crdYaml, tarnStorageCrd } from '@tarnjs/operator';
import { describe, expect, it } from 'vitest';

// biome-ignore lint/suspicious/noExplicitAny: the tests read generated JSON as it is
type Any = any;

import { REPO } from '../helpers/spawn.js';

describe('the TarnStorage CRD', () => {
  it('is committed exactly as the schema generates it (crds/ and the chart)', () => {
    const yaml = crdYaml();
    for (const file of ['crds/tarnstorages.tarn.dev.yaml', 'charts/tarn/crds/tarnstorages.tarn.dev.yaml'])
      expect(readFileSync(join(REPO, file), 'utf8'), `${file} is stale: run npm run docs`).toBe(yaml);
  });

  it('is structural and bounded: every node typed, every string, list and map with a bound', () => {
    const crd = tarnStorageCrd() as Any;
    const schema = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec;
    const problems: string[] = [];
    const walk = (s: Any, at: string) => {
      if (s.$ref || s.anyOf || s.oneOf || s.const !== undefined) problems.push(`${at}: not structural`);
      if (!s.type && !s['x-kubernetes-int-or-string']) problems.push(`${at}: no type`);
      if (s.type === 'string' && s.maxLength === undefined && !s.enum)
        problems.push(`${at}: unbounded string`);
      if (s['x-kubernetes-int-or-string'] && s.maxLength === undefined)
        problems.push(`${at}: unbounded size`);
      if (s.type === 'array' && s.maxItems === undefined) problems.push(`${at}: unbounded list`);
      if (s.additionalProperties === false) problems.push(`${at}: additionalProperties false`);
      if (s.additionalProperties && s.maxProperties === undefined) problems.push(`${at}: unbounded map`);
      for (const [k, v] of Object.entries(s.properties ?? {})) walk(v, `${at}.${k}`);
      if (s.items) walk(s.items, `${at}[]`);
      if (typeof s.additionalProperties === 'object') walk(s.additionalProperties, `${at}{}`);
    };
    walk(schema, 'spec');
    expect(problems).toEqual([]);
    // Credentials only by reference: no field of the spec takes a secret's value.
    expect(JSON.stringify(schema)).not.toMatch(/"(password|privateKey|secretAccessKey)":\{"type":"string"/);
    expect(schema.properties.nodes['x-kubernetes-list-map-keys']).toEqual(['name']);
  });
});
