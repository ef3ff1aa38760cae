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
