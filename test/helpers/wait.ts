/**
 * Resolves once `condition()` holds, checking every few milliseconds; rejects after `timeoutMs`.
 * For conditions no event announces (a file appearing in a folder another process writes).
 */
export async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Polls `fn` until it gives a value (not undefined), as a controller's effects are waited for;
 * rejects after `timeoutMs` with the last error `fn` threw, if any.
 */
export async function eventually<T>(
  fn: () => Promise<T | undefined>,
  timeoutMs = 30_000,
  everyMs = 150,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const value = await fn().catch((e: unknown) => {
      last = e;
      return undefined;
    });
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`not met in ${timeoutMs} ms; last error: ${String(last)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
