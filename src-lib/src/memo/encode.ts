import type { Hash } from 'node:crypto';
import { CacheKeyError } from './errors.js';

/**
 * Give a class a canonical encoding for cache keys: `[cacheKey]() { return { id: this.id } }`.
 * The returned value is encoded in its place, together with the class name.
 */
export const cacheKey: unique symbol = Symbol.for('tarn.cacheKey');

interface Encodable {
  [cacheKey](): unknown;
}

const TYPED = [
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
];

/** The prototypes of the built-ins encoded by kind: an instance of a subclass of one is refused. */
const BUILT_IN: ReadonlySet<object> = new Set<object>([
  Array.prototype,
  Map.prototype,
  Set.prototype,
  Date.prototype,
  RegExp.prototype,
  ArrayBuffer.prototype,
  DataView.prototype,
  Buffer.prototype,
  ...TYPED.map((T) => T.prototype),
]);

/** Why an instance of a class without `[cacheKey]` is refused, naming its class and the built-in it extends. */
function undeclared(object: object, proto: object): string {
  const ctor = (object as { constructor?: unknown }).constructor;
  const name = typeof ctor === 'function' ? ctor.name : '';
  let base = '';
  for (let p = Object.getPrototypeOf(proto); p !== null && !base; p = Object.getPrototypeOf(p))
    if (BUILT_IN.has(p))
      base = ` (a subclass of ${(p as { constructor: { name: string } }).constructor.name})`;
  return name
    ? `a ${name} instance${base} has no declared encoding; give ${name} a [cacheKey]() method or pass a \`key\` option`
    : `an instance of an anonymous class${base} has no declared encoding; give it a [cacheKey]() method or pass a \`key\` option`;
}

/**
 * Feeds a canonical, type-tagged encoding of `value` into `hash`: equal values give equal bytes
 * whatever their object key order or Map and Set insertion order, and values of different types
 * never give the same bytes. Functions, symbols and class instances without `[cacheKey]` (subclasses
 * of the built-ins encoded here included) are refused with a CacheKeyError naming where they are,
 * never silently dropped. Any depth of nesting is encoded: the encoder keeps its own stack instead of
 * recursing.
 */
export function encodeInto(hash: Hash, value: unknown, path = 'value'): void {
  run(value, path, (b) => hash.update(b));
}

/** The canonical encoding as bytes (Map entries and Set members are sorted by these). */
export function encode(value: unknown, path = 'value'): Buffer {
  const parts: Buffer[] = [];
  run(value, path, (b) => parts.push(b));
  return Buffer.concat(parts);
}

/**
 * Where a value sits, as links to its container: turned into a path string (`args[1].opts.cb`)
 * only when an error names it, so a call that encodes fine builds no strings.
 */
interface At {
  readonly up: At | undefined;
  /** An array index, an object key, or one of the step kinds below. */
  readonly step: number | string | Step;
  /** Containers between the root and here. */
  readonly depth: number;
}
type Step =
  | { readonly kind: 'get'; readonly key: unknown }
  | { readonly kind: 'keys' | 'values'; readonly i: number }
  | { readonly kind: 'cacheKey' };

const CACHE_KEY_STEP: Step = { kind: 'cacheKey' };

/**
 * Containers nested deeper than this are refused. Far beyond real arguments, and more than the
 * recursive encoder this one replaced could reach before its stack ran out (about 2,000 arrays, 1,100
 * Sets), so nothing that had a key loses it. The encoder keeps its own stack, so the limit is not
 * about the call stack: it stops what never bottoms out (a `[cacheKey]()` returning a new instance
 * of its class) and bounds the work a hostile argument can ask for (10,000 levels of Maps keyed by
 * Maps take about 0.1 s).
 */
export const MAX_DEPTH = 10_000;

// What is left to do, last first. Values are encoded in place; the other jobs finish containers.
const VALUE = 0; // encode `value`, found at `at`
const BYTES = 1; // emit `bytes` (a tag, or a sorted Map key)
const CLOSE = 2; // `object` is done: meeting it again is no longer a cycle
const OPEN_SINK = 3; // collect what follows apart, for sorting (a Map key, a Set member)
const SHUT_SINK = 4; // the collected encoding is complete: add it to `into`
const SET_DONE = 5; // every member of a Set is encoded: emit them sorted
const MAP_KEYS_DONE = 6; // every key of a Map is encoded: emit the entries sorted by key
const TIES_DONE = 7; // the values of entries whose keys encode alike are encoded: emit them sorted

type Job =
  | { op: typeof VALUE; value: unknown; at: At }
  | { op: typeof BYTES; bytes: Piece }
  | { op: typeof CLOSE; object: object }
  | { op: typeof OPEN_SINK }
  | { op: typeof SHUT_SINK; into: Piece[] }
  | { op: typeof SET_DONE; members: Piece[] }
  | { op: typeof MAP_KEYS_DONE; keys: Piece[]; map: Map<unknown, unknown>; at: At }
  | { op: typeof TIES_DONE; key: Piece; values: Piece[] };

/**
 * An encoding collected apart, to be sorted: a Buffer, or for a long one its parts. Copying each
 * nested encoding into one Buffer at every level would make Sets in Sets (or Maps keyed by Maps)
 * quadratic in their depth.
 */
type Piece = Buffer | Rope;
interface Rope {
  readonly parts: Piece[];
  readonly size: number;
}
/** Encodings up to this size are joined into one Buffer (Buffer.compare sorts those fastest). */
const JOIN_BELOW = 4096;

function run(root: unknown, rootPath: string, out: (b: Buffer) => void): void {
  /** The objects on the path from the root: meeting one again is a cycle. */
  const open = new Set<object>();
  /** Encodings being collected apart (innermost last); none: straight to `out`. */
  const sinks: Array<{ parts: Piece[]; size: number }> = [];
  const emit = (p: Piece) => {
    const sink = sinks.at(-1);
    if (sink) {
      sink.parts.push(p);
      sink.size += Buffer.isBuffer(p) ? p.length : p.size;
    } else if (Buffer.isBuffer(p)) out(p);
    else for (const b of leaves(p)) out(b);
  };
  const tag = (t: string, payload?: Buffer | string) => emit(tagged(t, payload));
  const fail = (at: At, reason: string): never => {
    throw new CacheKeyError(pathOf(rootPath, at), reason);
  };

  const jobs: Job[] = [{ op: VALUE, value: root, at: { up: undefined, step: '', depth: 0 } }];
  const inside = (at: At, step: At['step']): At => ({ up: at, step, depth: at.depth + 1 });
  for (let job = jobs.pop(); job !== undefined; job = jobs.pop()) {
    switch (job.op) {
      case BYTES:
        emit(job.bytes);
        continue;
      case CLOSE:
        open.delete(job.object);
        continue;
      case OPEN_SINK:
        sinks.push({ parts: [], size: 0 });
        continue;
      case SHUT_SINK: {
        const { parts, size } = sinks.pop() as (typeof sinks)[number];
        // A short encoding holds no Rope: a Rope is longer than JOIN_BELOW, and so is what holds one.
        job.into.push(size < JOIN_BELOW ? Buffer.concat(parts as Buffer[]) : { parts, size });
        continue;
      }
      case SET_DONE:
        job.members.sort(compare);
        tag('S', String(job.members.length));
        for (const m of job.members) emit(m);
        continue;
      case MAP_KEYS_DONE: {
        const entries = [...job.map.entries()].map(([k, v], i) => ({ key: job.keys[i] as Piece, k, v }));
        // Distinct keys can encode alike (two equal objects): such entries are ordered by their
        // values, or the same Map built in another order would give other bytes. A sort compares
        // every two neighbours of its result, so equal keys cannot go unnoticed.
        let tied = false;
        entries.sort((a, b) => {
          const c = compare(a.key, b.key);
          if (c === 0) tied = true;
          return c;
        });
        tag('m', String(entries.length));
        for (let end = entries.length; end > 0; ) {
          const last = entries[end - 1] as (typeof entries)[number];
          let start = end - 1;
          while (tied && start > 0 && compare((entries[start - 1] as typeof last).key, last.key) === 0)
            start--;
          if (start === end - 1) {
            jobs.push({ op: VALUE, value: last.v, at: inside(job.at, { kind: 'get', key: last.k }) });
            jobs.push({ op: BYTES, bytes: last.key });
          } else {
            // The values of the run are encoded apart first, then emitted sorted, each after the key.
            const values: Piece[] = [];
            jobs.push({ op: TIES_DONE, key: last.key, values });
            for (let i = end - 1; i >= start; i--) {
              const e = entries[i] as typeof last;
              jobs.push({ op: SHUT_SINK, into: values });
              jobs.push({ op: VALUE, value: e.v, at: inside(job.at, { kind: 'get', key: e.k }) });
              jobs.push({ op: OPEN_SINK });
            }
          }
          end = start;
        }
        continue;
      }
      case TIES_DONE:
        job.values.sort(compare);
        for (const v of job.values) {
          emit(job.key);
          emit(v);
        }
        continue;
    }
    const { value, at } = job;
    switch (typeof value) {
      case 'undefined':
        emit(EMPTY.u);
        continue;
      case 'boolean':
        emit(value ? EMPTY.t : EMPTY.f);
        continue;
      case 'number': {
        const b = Buffer.alloc(8);
        b.writeDoubleBE(Number.isNaN(value) ? Number.NaN : value);
        tag('d', b);
        continue;
      }
      case 'bigint':
        tag('b', value.toString());
        continue;
      case 'string':
        tag('s', value);
        continue;
      case 'symbol':
        fail(at, 'a symbol has no stable encoding');
        continue;
      case 'function':
        fail(
          at,
          `a function (${value.name || 'anonymous'}) cannot be part of a cache key; pass a \`key\` option`,
        );
        continue;
    }
    if (value === null) {
      emit(EMPTY.n);
      continue;
    }
    const object = value as object;
    if (open.has(object)) fail(at, 'a circular reference has no canonical encoding');
    // Built-ins are encoded by kind, so an instance of a subclass (its class, its own fields) would be
    // encoded as its base: only the built-ins themselves, plain objects and declared classes pass.
    const proto = Object.getPrototypeOf(object);
    if (
      proto !== Object.prototype &&
      proto !== null &&
      !BUILT_IN.has(proto) &&
      typeof (object as Partial<Encodable>)[cacheKey] !== 'function'
    )
      fail(at, undeclared(object, proto));
    // Leaves (Buffer, Date, …) hold no references, so they need no CLOSE.
    if (leaf(object, tag)) continue;
    if (at.depth >= MAX_DEPTH)
      fail(at, `nested more than ${MAX_DEPTH} levels deep; pass a \`key\` option that identifies the call`);
    open.add(object);
    jobs.push({ op: CLOSE, object });

    if (typeof (object as Partial<Encodable>)[cacheKey] === 'function') {
      tag('k', object.constructor?.name ?? '');
      jobs.push({ op: VALUE, value: (object as Encodable)[cacheKey](), at: inside(at, CACHE_KEY_STEP) });
      continue;
    }
    if (Array.isArray(object)) {
      tag('a', String(object.length));
      for (let i = object.length - 1; i >= 0; i--) {
        if (!(i in object)) jobs.push({ op: BYTES, bytes: EMPTY.h });
        else jobs.push({ op: VALUE, value: object[i], at: inside(at, i) });
      }
      continue;
    }
    if (object instanceof Map) {
      // The keys are encoded apart first, so that the entries can be sorted by them.
      const keys: Buffer[] = [];
      jobs.push({ op: MAP_KEYS_DONE, keys, map: object, at });
      let i = object.size;
      for (const k of [...object.keys()].reverse()) {
        i--;
        jobs.push({ op: SHUT_SINK, into: keys });
        jobs.push({ op: VALUE, value: k, at: inside(at, { kind: 'keys', i }) });
        jobs.push({ op: OPEN_SINK });
      }
      continue;
    }
    if (object instanceof Set) {
      const members: Buffer[] = [];
      jobs.push({ op: SET_DONE, members });
      let i = object.size;
      for (const m of [...object].reverse()) {
        i--;
        jobs.push({ op: SHUT_SINK, into: members });
        jobs.push({ op: VALUE, value: m, at: inside(at, { kind: 'values', i }) });
        jobs.push({ op: OPEN_SINK });
      }
      continue;
    }
    // A plain object (anything else was refused above).
    if (Object.getOwnPropertySymbols(object).length > 0)
      fail(at, 'symbol-keyed properties have no stable encoding');
    const keys = Object.keys(object).sort();
    tag('o', String(keys.length));
    for (let i = keys.length - 1; i >= 0; i--) {
      const k = keys[i] as string;
      jobs.push({ op: VALUE, value: (object as Record<string, unknown>)[k], at: inside(at, k) });
      jobs.push({ op: BYTES, bytes: tagged('s', k) });
    }
  }
}

/** The Buffers of a Piece, in order (without recursing: a Rope may be deep). */
function* leaves(piece: Piece): Generator<Buffer> {
  const stack: Piece[] = [piece];
  for (let p = stack.pop(); p !== undefined; p = stack.pop()) {
    if (Buffer.isBuffer(p)) yield p;
    else for (let i = p.parts.length - 1; i >= 0; i--) stack.push(p.parts[i] as Piece);
  }
}

/** Buffer.compare over the bytes of two Pieces: bytewise, a prefix first. */
function compare(a: Piece, b: Piece): number {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return Buffer.compare(a, b);
  const as = leaves(a);
  const bs = leaves(b);
  let x: Buffer | undefined = EMPTY_BODY;
  let y: Buffer | undefined = EMPTY_BODY;
  let i = 0;
  let j = 0;
  for (;;) {
    while (x && i === x.length) {
      x = as.next().value;
      i = 0;
    }
    while (y && j === y.length) {
      y = bs.next().value;
      j = 0;
    }
    if (!x || !y) return (x ? 1 : 0) - (y ? 1 : 0);
    const n = Math.min(x.length - i, y.length - j);
    const c = x.compare(y, j, j + n, i, i + n);
    if (c !== 0) return c;
    i += n;
    j += n;
  }
}

/** Encodes the objects that hold no other values; false for containers and the rest. */
function leaf(value: object, tag: (t: string, payload?: Buffer | string) => void): boolean {
  if (typeof (value as Partial<Encodable>)[cacheKey] === 'function' || Array.isArray(value)) return false;
  if (Buffer.isBuffer(value)) {
    tag('B', value);
    return true;
  }
  for (const T of TYPED) {
    if (value instanceof T) {
      tag('T', `${T.name}:${bytesOf(value).toString('base64')}`);
      return true;
    }
  }
  if (value instanceof ArrayBuffer) {
    tag('A', Buffer.from(value));
    return true;
  }
  if (value instanceof DataView) {
    tag('V', bytesOf(value));
    return true;
  }
  if (value instanceof Date) {
    tag('D', String(value.getTime()));
    return true;
  }
  if (value instanceof RegExp) {
    tag('r', `${value.flags}/${value.source}`);
    return true;
  }
  return false;
}

/** A tag byte, the payload's length (uint32 BE), the payload. */
function tagged(tag: string, payload?: Buffer | string): Buffer {
  const body =
    payload === undefined ? EMPTY_BODY : typeof payload === 'string' ? textBytes(payload) : payload;
  const out = Buffer.allocUnsafe(5 + body.length);
  out.write(tag, 0, 1, 'latin1');
  out.writeUInt32BE(body.length, 1);
  body.copy(out, 5);
  return out;
}

/**
 * A string's bytes: UTF-8, except that a lone surrogate, which UTF-8 cannot hold (Buffer.from would
 * turn it into U+FFFD, so that "\uD800", "\uDC00" and "\uFFFD" shared a key), is written as the three
 * bytes UTF-8 would give its code unit (WTF-8: ED A0 80 for U+D800). No well-formed string gives
 * those bytes, so the encoding stays one-to-one, and a well-formed string keeps the bytes it always
 * had (existing caches keep their keys).
 */
function textBytes(s: string): Buffer {
  if ((s as string & WellFormed).isWellFormed()) return Buffer.from(s);
  const parts: Buffer[] = [];
  let from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    const next = s.charCodeAt(i + 1); // NaN past the end
    if (c < 0xdc00 && next >= 0xdc00 && next <= 0xdfff) {
      i++; // a pair: UTF-8 proper
      continue;
    }
    parts.push(
      Buffer.from(s.slice(from, i)),
      Buffer.from([0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f)]),
    );
    from = i + 1;
  }
  parts.push(Buffer.from(s.slice(from)));
  return Buffer.concat(parts);
}
/** ES2024's String.prototype.isWellFormed (Node 20 has it; the configured lib is ES2023). */
interface WellFormed {
  isWellFormed(): boolean;
}

const EMPTY_BODY = Buffer.alloc(0);
const EMPTY = {
  u: tagged('u'),
  t: tagged('t'),
  f: tagged('f'),
  n: tagged('n'),
  h: tagged('h'),
} as const;

/** Steps kept at each end of a path too deep to print whole. */
const PATH_ENDS = 16;

function pathOf(root: string, at: At): string {
  const steps: string[] = [];
  for (let a: At | undefined = at; a?.up !== undefined; a = a.up) steps.push(stepText(a.step));
  steps.reverse();
  if (steps.length <= 2 * PATH_ENDS) return root + steps.join('');
  const skipped = steps.length - 2 * PATH_ENDS;
  return `${root}${steps.slice(0, PATH_ENDS).join('')}…(${skipped} levels)…${steps.slice(-PATH_ENDS).join('')}`;
}

function stepText(step: At['step']): string {
  if (typeof step === 'number') return `[${step}]`;
  if (typeof step === 'string') return `.${step}`;
  switch (step.kind) {
    case 'get':
      return `.get(${describeKey(step.key)})`;
    case 'keys':
      return `.keys()[${step.i}]`;
    case 'values':
      return `.values()[${step.i}]`;
    case 'cacheKey':
      return '[cacheKey]()';
  }
}

function bytesOf(view: ArrayBufferView): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

function describeKey(k: unknown): string {
  return typeof k === 'string' ? JSON.stringify(k) : typeof k === 'object' ? '…' : String(k);
}
