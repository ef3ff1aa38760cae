import { fstatSync, statSync, writeSync } from 'node:fs';

/**
 * True when the process was started with stdin closed (`tarn put - <&-`). Node replaces a closed
 * descriptor 0 with /dev/null opened read-write before any script runs, so a closed stdin would read
 * as the empty value. A shell's `</dev/null` opens it read-only; a write of zero bytes tells the two
 * apart (EBADF on a read-only descriptor) and writes nothing. Only `<>/dev/null` is mistaken for a
 * closed stdin, and it is no way to say "the empty value".
 */
export function stdinWasClosed(): boolean {
  try {
    const st = fstatSync(0);
    if (!st.isCharacterDevice() || st.rdev !== statSync('/dev/null').rdev) return false;
    writeSync(0, Buffer.alloc(0));
    return true;
  } catch {
    return false;
  }
}
