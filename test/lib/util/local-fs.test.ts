import { readFileSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { localDevice, localPath, parseMountInfo } from '../../../src-lib/src/util/local-fs.js';

describe('which files are on a local filesystem', () => {
  it('reads mountinfo: escapes, the last mount on a point wins, device numbers as fstat gives them', () => {
    const t = parseMountInfo(
      [
        '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
        '30 22 0:40 / /mnt/with\\040space rw - tmpfs tmpfs rw',
        '31 22 0:41 / /data rw - ext4 /dev/sdb rw',
        '32 31 0:52 / /data rw - nfs4 server:/export rw,vers=4.2',
        '33 22 259:65536 / /big rw master:3 - xfs /dev/nvme0n1p1 rw',
        'garbage line',
      ].join('\n'),
    );
    expect(t.points.map((p) => [p.point, p.local])).toEqual([
      ['/mnt/with space', true],
      ['/data', false],
      ['/big', true],
      ['/', true],
    ]);
    // glibc makedev: minor's low byte, major's 12 bits, then minor's high bits from bit 20. A device
    // hidden under a later mount (/data's ext4) is still a local device.
    expect([...t.localDevices].sort((a, b) => a - b)).toEqual(
      [0x801, 0x28, 0x29, 0x103 * 256 + 256 * 2 ** 20].sort((a, b) => a - b),
    );
  });

  it('on this machine: /tmp and /dev/shm are local, /proc is not, and device numbers agree with fstat', () => {
    const info = readFileSync('/proc/self/mountinfo', 'utf8');
    const root = parseMountInfo(info).points.find((p) => p.point === '/');
    expect(root?.local).toBe(true);
    expect(localPath('/dev/shm/x')).toBe(true);
    expect(localPath('/proc/self/status')).toBe(false);
    expect(localPath('relative/under/cwd')).toBe(localPath(process.cwd()));
    expect(localDevice(statSync('/dev/shm').dev)).toBe(true);
    expect(localDevice(statSync('/proc/self/status').dev)).toBe(false);
  });
});
