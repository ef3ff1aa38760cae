import { AbortError, CollisionError, InvalidKeyError, KeyMismatchError, raceAbort } from '../../errors.js';
import type { Value } from '../contract.js';

/**
 * What a combinator was doing with a child when the child failed: `write` is a write that the child
 * took and then failed to store (the value went on to the next child).
 */
export type FaultOp = 'read' | 'contains' | 'touch' | 'keys' | 'replicate' | 'write' | 'corrupt';

/** The answer of a child that failed or did not answer in time: the combinator goes on without it. */
export class Skipped {
  constructor(readonly error: Error) {}
}

/**
 * Runs the operations of a combinator's children that may fail without failing the combinator
 * (a cache that is down, a level that hangs): each gets its child's timeout, and a failure is
 * counted and reported, once per failure, instead of thrown.
 */
export class Faults {
  /** Faults so far, per child name. */
  readonly counts: Record<string, number> = {};

  constructor(
    private readonly names: readonly string[],
    private readonly timeouts: ReadonlyArray<number | undefined>,
    private readonly notify: (name: string, op: FaultOp, key: string | undefined, error: Error) => void,
  ) {}

  /**
   * Runs child `index`'s operation; a failure or a timeout gives Skipped (and is reported). The
   * caller's own abort, and errors about the key itself, still throw: they are no child's fault.
   */
  async run<T>(
    index: number,
    op: FaultOp,
    key: string | undefined,
    signal: AbortSignal | undefined,
    run: (signal: AbortSignal | undefined) => Promise<T>,
  ): Promise<T | Skipped> {
    const ms = this.timeouts[index];
    const timeout = ms === undefined ? undefined : AbortSignal.timeout(ms);
    const combined = timeout && signal ? AbortSignal.any([signal, timeout]) : (timeout ?? signal);
    const attempt = run(combined);
    try {
      return await raceAbort(attempt, timeout);
    } catch (caught) {
      if (signal?.aborted) throw new AbortError(signal.reason);
      let e = caught;
      if (timeout?.aborted) {
        // A value that arrives after all is closed, not leaked.
        attempt.then(
          (late) => (late as Partial<Value> | null)?.close?.(),
          () => undefined,
        );
        e = new Error(`no answer within ${ms} ms`);
      }
      if (!isFault(e, signal)) throw e;
      this.report(index, op, key, e as Error);
      return new Skipped(e as Error);
    }
  }

  report(index: number, op: FaultOp, key: string | undefined, error: Error): void {
    const name = this.names[index] ?? String(index);
    this.counts[name] = (this.counts[name] ?? 0) + 1;
    this.notify(name, op, key, error);
  }
}

/**
 * Whether a child's error is the child's fault (down, hung, broken), which a combinator may go on
 * without; not the caller's abort, nor an error about the key or the value, which any child would give.
 */
export function isFault(e: unknown, signal: AbortSignal | undefined): boolean {
  if (signal?.aborted || e instanceof AbortError) return false;
  return !(e instanceof InvalidKeyError || e instanceof KeyMismatchError || e instanceof CollisionError);
}

/**
 * The default report: a line on stderr per child and operation, at most every 10 s, saying how many
 * were held back, so a cache that is down does not flood the log with a line per read.
 */
export function throttledReport(
  what: string,
): (name: string, op: FaultOp, key: string | undefined, error: Error) => void {
  const last = new Map<string, { at: number; held: number }>();
  return (name, op, key, error) => {
    const topic = `${name}\0${op}`;
    const seen = last.get(topic);
    const now = Date.now();
    if (seen && now - seen.at < 10_000) {
      seen.held++;
      return;
    }
    const doing = key === undefined ? op : `${op} ${key.slice(0, 12)}…`;
    const outcome = op === 'corrupt' ? 'not served' : 'failed, skipped';
    const more = seen?.held ? ` (and ${seen.held} more since the last report)` : '';
    console.warn(`tarn: ${what} ${name}: ${doing} ${outcome}: ${error.message}${more}`);
    last.set(topic, { at: now, held: 0 });
  };
}
