/** The disk or the user's quota is full (or a file would pass the filesystem's size limit): a write meeting it is refused, not failed. */
export function isFull(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG';
}

/** This user may not change the lake (a read-only mount, permissions): reading and verifying go on. */
export function isReadOnly(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EACCES' || code === 'EPERM' || code === 'EROFS';
}
