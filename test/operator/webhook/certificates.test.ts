// cert-manager's way: the serving pair in a mounted Secret, which the kubelet updates by swapping a
// `..data` link to a new folder of files. The operator's own CA in a Secret is
// test/operator/webhook.test.ts (it needs an API server).
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileCertificates, issueCertificate } from '@tarnjs/operator';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../helpers/tmp.js';

const now = Date.now();
const pair = (name: string) =>
  issueCertificate({
    commonName: name,
    hosts: ['tarn-operator-webhook.tarn-system.svc'],
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3_600_000),
  });

/** A Secret volume as the kubelet writes it: the files in a dated folder, `..data` pointing there. */
function project(dir: string, version: string, files: Record<string, string>) {
  const folder = join(dir, `..${version}`);
  mkdirSync(folder);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(folder, name), text);
  symlinkSync(`..${version}`, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  for (const name of Object.keys(files)) {
    try {
      symlinkSync(join('..data', name), join(dir, name));
    } catch {
      // the link exists from an earlier version: it follows ..data
    }
  }
}

describe('FileCertificates', () => {
  it('serves the mounted pair, and the renewed one after the kubelet swaps the Secret in', async () => {
    const dir = tempDir('tarn-webhook-files-');
    const first = pair('first');
    project(dir, 'v1', { 'tls.crt': first.certificate, 'tls.key': first.privateKey, 'ca.crt': 'x' });
    const source = new FileCertificates(dir);
    expect(await source.sync()).toEqual(first);
    const renewed = pair('renewed');
    project(dir, 'v2', { 'tls.crt': renewed.certificate, 'tls.key': renewed.privateKey, 'ca.crt': 'x' });
    expect(await source.sync()).toEqual(renewed);
  });

  it('fails a sync while the files are not there (the caller keeps what it serves and tries again)', async () => {
    const dir = tempDir('tarn-webhook-files-');
    const source = new FileCertificates(dir);
    await expect(source.sync()).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
