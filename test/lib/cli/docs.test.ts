import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO, run, tarn } from '../../helpers/spawn.js';

describe('generated docs', () => {
  it('README.md and docs/cli.md show exactly `tarn --help`; docs/library.md exactly the error table', async () => {
    const check = await run(process.execPath, [join(REPO, 'scripts/docs.js'), '--check']);
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
  });

  it('the usage block in the README is the one `tarn --help` prints', async () => {
    const { readFileSync } = await import('node:fs');
    const help = await tarn(['--help']);
    expect(help.code).toBe(0);
    const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
    expect(readme).toContain(`\`\`\`\n${help.stdout.trimEnd()}\n\`\`\`\n<!-- /usage -->`);
  });
});
