import { types } from 'node:util';
import { deserialize, serialize } from 'node:v8';
import { MAX_DEPTH } from './encode.js';
import { MemoError } from './errors.js';

/** How results become bytes in the storage and back. */
export interface Serializer {
  /** Recorded in each index entry, so a change of serializer is a miss, not a misread. */
  readonly name: string;
  serialize(value: unknown): Buffer;
  deserialize(bytes: Buffer): unknown;
}

/**
 * Lossless by default: V8's structured clone keeps Map, Set, Date, BigInt, typed arrays,
 * undefined, -0, NaN and cycles. Class instances come back as plain objects (no prototype).
 */
export const v8Serializer: Serializer = {
  name: 'v8',
  serialize: (value) => serialize(value),
  deserialize: (bytes) => deserialize(bytes),
};

/** JSON: portable and readable, but lossy (Map, Set, Date, undefined, BigInt do not survive). */
export const jsonSerializer: Serializer = {
  name: 'json',
  serialize: (value) => {
    const text = JSON.stringify(value);
    if (text === undefined) throw new MemoError('the result has no JSON form (undefined or a function)');
    return Buffer.from(text);
  },
  deserialize: (bytes) => JSON.parse(bytes.toString('utf8')),
};

export function serializerOf(option: 'v8' | 'json' | Serializer | undefined): Serializer {
  if (option === undefined || option === 'v8') return v8Serializer;
  if (option === 'json') return jsonSerializer;
  return option;
}

/**
 * The error for a result `serializer` failed on: a MemoError that names the part it could not
 * store (`result.opts.cb is a function (onDone)`) when that can be found, with the serializer's
 * own error as the cause.
 */
export function unserialisable(
  what: string,
  value: unknown,
  serializer: Serializer,
  cause: unknown,
): MemoError {
  const message = cause instanceof Error ? cause.message : String(cause);
  const why =
    cause instanceof RangeError && /call stack/i.test(message)
      ? `it is nested too deeply to serialise (${message})`
      : // A DataCloneError quotes the whole source of the function it met: keep the start.
        (culprit(value, serializer) ?? (message.length > 200 ? `${message.slice(0, 200)}…` : message));
  return new MemoError(
    `the result of ${what} cannot be stored with the ${serializer.name} serializer: ${why}; ` +
      'return data it can store, or pass another serializer (the call is not cached)',
    { cause },
  );
}

/** Parts looked at before giving up on naming the culprit (the search only runs after a failure). */
const SEARCH_LIMIT = 100_000;

interface Part {
  value: unknown;
  path: string;
  depth: number;
}

/** A path of a deep part, shortened for a message. */
function abridged(path: string): string {
  return path.length <= 300 ? path : `${path.slice(0, 140)}…${path.slice(-140)}`;
}

/**
 * The first part of `value` that the built-in serializer cannot store, as `<path> is <what>`.
 * A search by type rather than by serialising parts, which would blame what is fine inside its
 * container (JSON drops an `undefined` property but cannot serialise `undefined` alone).
 */
function culprit(value: unknown, serializer: Serializer): string | undefined {
  const refused: ((v: unknown, top: boolean) => string | undefined) | undefined =
    serializer === v8Serializer ? v8Refuses : serializer === jsonSerializer ? jsonRefuses : undefined;
  if (!refused) return undefined;
  const root = refused(value, true);
  if (root) return `result is ${root}`;
  const open = new Set<object>();
  // Depth first, so that a cycle is seen as one (`open` holds the containers on the current path).
  const stack: Array<Part | { close: object }> = [{ value, path: 'result', depth: 0 }];
  for (let seen = 0; stack.length > 0 && seen < SEARCH_LIMIT; seen++) {
    const top = stack.pop() as (typeof stack)[number];
    if ('close' in top) {
      open.delete(top.close);
      continue;
    }
    const { value: v, path, depth } = top;
    if (depth > 0) {
      const what = refused(v, false);
      if (what) return `${abridged(path)} is ${what}`;
    }
    if (typeof v !== 'object' || v === null || depth >= MAX_DEPTH) continue;
    if (open.has(v)) {
      // v8 stores cycles; JSON cannot.
      if (serializer === jsonSerializer) return `${abridged(path)} is a circular reference`;
      continue;
    }
    open.add(v);
    stack.push({ close: v });
    const children = childrenOf(v, serializer === jsonSerializer, path);
    for (let i = children.length - 1; i >= 0; i--) {
      const child = children[i] as Omit<Part, 'depth'>;
      stack.push({ ...child, depth: depth + 1 });
    }
  }
  return undefined;
}

/** What of `v` itself the structured clone refuses (not looking inside). */
function v8Refuses(v: unknown): string | undefined {
  if (typeof v === 'function') return `a function (${v.name || 'anonymous'})`;
  if (typeof v === 'symbol') return 'a symbol';
  if (typeof v !== 'object' || v === null) return undefined;
  if (types.isPromise(v)) return 'a Promise';
  if (types.isProxy(v)) return 'a Proxy';
  if (types.isWeakMap(v) || types.isWeakSet(v) || v instanceof WeakRef)
    return `a ${Object.prototype.toString.call(v).slice(8, -1)}`;
  if (types.isGeneratorObject(v)) return 'a generator';
  return undefined;
}

/** What of `v` itself JSON refuses: BigInt anywhere; at the top, what has no JSON form at all. */
function jsonRefuses(v: unknown, top: boolean): string | undefined {
  if (typeof v === 'bigint') return 'a BigInt';
  if (!top) return undefined;
  if (v === undefined) return 'undefined';
  if (typeof v === 'function') return `a function (${v.name || 'anonymous'})`;
  if (typeof v === 'symbol') return 'a symbol';
  return undefined;
}

function childrenOf(v: object, json: boolean, path: string): Array<Omit<Part, 'depth'>> {
  if (Array.isArray(v)) return v.map((value, i) => ({ value, path: `${path}[${i}]` }));
  // JSON stores what toJSON returns, and Map and Set as {} (lossy, but no error).
  if (json && typeof (v as { toJSON?: unknown }).toJSON === 'function') return [];
  if (v instanceof Map) {
    if (json) return [];
    return [...v].flatMap(([k, value], i) => [
      { value: k, path: `${path}.keys()[${i}]` },
      {
        value,
        path: `${path}.get(${typeof k === 'string' ? JSON.stringify(k) : typeof k === 'object' ? '…' : String(k)})`,
      },
    ]);
  }
  if (v instanceof Set)
    return json ? [] : [...v].map((value, i) => ({ value, path: `${path}.values()[${i}]` }));
  if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return [];
  return Object.keys(v).map((k) => ({ value: (v as Record<string, unknown>)[k], path: `${path}.${k}` }));
}
