import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidSpecError, podAdditions, render, validateSpec } from '@tarnjs/operator';
import { parseConfigText } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { REPO } from '../helpers/spawn.js';

// biome-ignore lint/suspicious/noExplicitAny: the tests read generated JSON as it is
type Any = any;

import { cacheSpec } from './fixtures.js';

describe('a TarnStorage spec rendered for the sidecar', () => {
  it('becomes the library config with refs, secrets as env references, and the pod’s volumes', () => {
    const r = render(validateSpec(cacheSpec));
    // The sidecar loads exactly this text.
    const config = parseConfigText(r.yaml);
    expect(config.location).toEqual({ ref: 'cache' });
    expect(config.locations?.local).toMatchObject({ kind: 'disk', root: '/tarn/local', maxSize: '50G' });
    expect(config.locations?.redis).toMatchObject({
      kind: 'redis',
      password: { env: 'TARN_REDIS_PASSWORD' },
    });
    expect(config.memo).toEqual({ index: { ref: 'redis' } });
    expect(config.serve).toMatchObject({ socket: '/run/tarn/tarn.sock', ingestRoots: ['/tarn/exchange'] });
    // No secret value, only the names of variables.
    expect(r.env.map((e) => e.name).sort()).toEqual([
      'TARN_REDIS_PASSWORD',
      'TARN_S3_ACCESS_KEY_ID',
      'TARN_S3_SECRET_ACCESS_KEY',
    ]);
    expect(r.env[0]?.valueFrom.secretKeyRef).toEqual({ name: 'redis', key: 'password' });
    expect(r.volumes.map((v) => v.name)).toEqual(['tarn-local', 'tarn-exchange']);
    expect(r.hash).toMatch(/^[0-9a-f]{16}$/);
  });

  it('hashes the config only: the same spec gives the same hash, a change another', () => {
    const a = render(validateSpec(cacheSpec)).hash;
    expect(render(validateSpec(structuredClone(cacheSpec))).hash).toBe(a);
    const changed = structuredClone(cacheSpec);
    (changed.nodes[1]?.disk as { maxSize: string }).maxSize = '60G';
    expect(render(validateSpec(changed)).hash).not.toBe(a);
  });

  it('refuses what the CRD cannot check, naming the place: cycles, unknown names, two kinds', () => {
    const cycle = structuredClone(cacheSpec);
    cycle.nodes.push(
      { name: 'loop-a', fanout: { members: ['loop-b'] } },
      { name: 'loop-b', small: { maxSize: 10, node: 'loop-a' } },
    );
    expect(() => validateSpec(cycle)).toThrow(/cycle: loop-a → loop-b → loop-a/);
    expect(() => validateSpec({ ...cacheSpec, root: 'nope' })).toThrow(/spec.root: no node is named nope/);
    const two = structuredClone(cacheSpec);
    (two.nodes[1] as Record<string, unknown>).redis = {};
    expect(() => validateSpec(two)).toThrow(InvalidSpecError);
    expect(() => validateSpec({ root: 'a', nodes: [{ name: 'A', fanout: { members: ['a'] } }] })).toThrow(
      /spec.nodes.0.name: a lowercase DNS label/,
    );
    // What the library refuses in the rendered config is refused too (a size past the largest).
    const huge = structuredClone(cacheSpec);
    (huge.nodes[1]?.disk as { maxSize: string }).maxSize = '10000000P';
    expect(() => render(validateSpec(huge))).toThrow(InvalidSpecError);
  });
});

describe('podAdditions', () => {
  const rendered = render(validateSpec(cacheSpec));
  const additions = podAdditions({
    storage: 'lab',
    spec: cacheSpec,
    rendered,
    defaultImage: 'tarn:1',
    containers: ['app', 'worker'],
  });

  it('adds a native sidecar, restricted, probed, with the secrets and the lakes', () => {
    const [sidecar] = additions.spec.initContainers as Array<Record<string, Any>>;
    expect(sidecar?.name).toBe('tarn-sidecar');
    expect(sidecar?.restartPolicy).toBe('Always');
    expect(sidecar?.image).toBe('tarn:1');
    expect(sidecar?.securityContext).toMatchObject({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(sidecar?.startupProbe.exec.command).toEqual([
      'node',
      '/app/sidecar/bin/tarn-sidecar.js',
      'probe',
      '--socket',
      '/run/tarn/tarn.sock',
    ]);
    expect(sidecar?.env).toEqual(rendered.env);
    expect(sidecar?.resources).toEqual({
      requests: { cpu: '50m', memory: '64Mi' },
      limits: { cpu: '1', memory: '512Mi' },
    });
  });

  it('gives every app container the socket, $TARN_SIDECAR, the lakes read-only and the exchange folder', () => {
    expect(additions.spec.containers.map((c) => c.name)).toEqual(['app', 'worker']);
    for (const c of additions.spec.containers) {
      expect(c.env).toEqual([{ name: 'TARN_SIDECAR', value: '/run/tarn/tarn.sock' }]);
      expect(c.volumeMounts).toEqual([
        { name: 'tarn-socket', mountPath: '/run/tarn' },
        { name: 'tarn-local', mountPath: '/tarn/local', readOnly: true },
        { name: 'tarn-exchange', mountPath: '/tarn/exchange' },
      ]);
    }
    expect(additions.metadata.annotations).toEqual({ 'tarn.dev/config-hash': rendered.hash });
  });

  it('is pure: the same input, the same additions', () => {
    const again = podAdditions({
      storage: 'lab',
      spec: cacheSpec,
      rendered,
      defaultImage: 'tarn:1',
      containers: ['app', 'worker'],
    });
    expect(again).toEqual(additions);
  });
});

describe('the examples', () => {
  const examples = readdirSync(join(REPO, 'examples')).filter((f) => f.endsWith('.yaml'));
  it('hold TarnStorages that check and render into a config the library loads', () => {
    let storages = 0;
    for (const file of examples)
      for (const doc of parseAllDocuments(readFileSync(join(REPO, 'examples', file), 'utf8'))) {
        const o = doc.toJS() as Any;
        if (o?.kind !== 'TarnStorage') continue;
        storages++;
        const r = render(validateSpec(o.spec));
        expect(() => parseConfigText(r.yaml), file).not.toThrow();
      }
    expect(storages).toBeGreaterThanOrEqual(3);
  });
});
