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

/**
 * Feeds a canonical, type-tagged encoding of `value` into `hash`: equal values give equal bytes
 * whatever their object key order or Map and Set insertion order, and values of different types
 * never give the same bytes. Functions, symbols and class instances without `[cacheKey]` are
 * refused with a CacheKeyError naming where they are, never silently dropped.
 */
export function encodeInto(hash: Hash, value: unknown, path = 'value'): void {
  new Encoder(hash).encode(value, path);
}

/** The canonical encoding as bytes (Map keys and Set members are sorted by these). */
export function encode(value: unknown, path = 'value'): Buffer {
  return bytesOfEncoding(value, path, new Set());
}

/** Encodes into a buffer, sharing `open` (the objects being encoded) so that cycles are seen. */
function bytesOfEncoding(value: unknown, path: string, open: Set<object>): Buffer {
  const parts: Buffer[] = [];
  new Encoder({ update: (b: Buffer) => parts.push(b) } as unknown as Hash, open).encode(value, path);
  return Buffer.concat(parts);
}

class Encoder {
  constructor(
    private readonly out: Hash,
    /** The objects on the path from the root: meeting one again is a cycle. */
    private readonly open = new Set<object>(),
  ) {}

  #tag(tag: string, payload?: Buffer | string): void {
    const body = payload === undefined ? Buffer.alloc(0) : Buffer.from(payload);
    const head = Buffer.alloc(5);
    head.write(tag, 0, 1, 'latin1');
    head.writeUInt32BE(body.length, 1);
    this.out.update(head);
    if (body.length > 0) this.out.update(body);
  }

  encode(value: unknown, path: string): void {
    switch (typeof value) {
      case 'undefined':
        this.#tag('u');
        return;
      case 'boolean':
        this.#tag(value ? 't' : 'f');
        return;
      case 'number': {
        const b = Buffer.alloc(8);
        b.writeDoubleBE(Number.isNaN(value) ? Number.NaN : value);
        this.#tag('d', b);
        return;
      }
      case 'bigint':
        this.#tag('b', value.toString());
        return;
      case 'string':
        this.#tag('s', value);
        return;
      case 'symbol':
        throw new CacheKeyError(path, 'a symbol has no stable encoding');
      case 'function':
        throw new CacheKeyError(
          path,
          `a function (${value.name || 'anonymous'}) cannot be part of a cache key; pass a \`key\` option`,
        );
    }
    if (value === null) {
      this.#tag('n');
      return;
    }
    const object = value as object;
    if (this.open.has(object))
      throw new CacheKeyError(path, 'a circular reference has no canonical encoding');
    this.open.add(object);
    try {
      this.#object(object, path);
    } finally {
      this.open.delete(object);
    }
  }

  #object(value: object, path: string): void {
    if (typeof (value as Partial<Encodable>)[cacheKey] === 'function') {
      this.#tag('k', value.constructor?.name ?? '');
      this.encode((value as Encodable)[cacheKey](), `${path}[cacheKey]()`);
      return;
    }
    if (Array.isArray(value)) {
      this.#tag('a', String(value.length));
      for (let i = 0; i < value.length; i++) {
        if (!(i in value)) this.#tag('h');
        else this.encode(value[i], `${path}[${i}]`);
      }
      return;
    }
    if (Buffer.isBuffer(value)) {
      this.#tag('B', value);
      return;
    }
    for (const T of TYPED) {
      if (value instanceof T) {
        this.#tag('T', `${T.name}:${bytesOf(value).toString('base64')}`);
        return;
      }
    }
    if (value instanceof ArrayBuffer) {
      this.#tag('A', Buffer.from(value));
      return;
    }
    if (value instanceof DataView) {
      this.#tag('V', bytesOf(value));
      return;
    }
    if (value instanceof Date) {
      this.#tag('D', String(value.getTime()));
      return;
    }
    if (value instanceof RegExp) {
      this.#tag('r', `${value.flags}/${value.source}`);
      return;
    }
    if (value instanceof Map) {
      const entries = [...value.entries()].map(([k, v], i) => ({
        key: bytesOfEncoding(k, `${path}.keys()[${i}]`, this.open),
        k,
        v,
        i,
      }));
      entries.sort((a, b) => Buffer.compare(a.key, b.key));
      this.#tag('m', String(entries.length));
      for (const e of entries) {
        this.out.update(e.key);
        this.encode(e.v, `${path}.get(${describeKey(e.k)})`);
      }
      return;
    }
    if (value instanceof Set) {
      const members = [...value].map((m, i) => bytesOfEncoding(m, `${path}.values()[${i}]`, this.open));
      members.sort(Buffer.compare);
      this.#tag('S', String(members.length));
      for (const m of members) this.out.update(m);
      return;
    }
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      const name = value.constructor?.name ?? 'an object';
      throw new CacheKeyError(
        path,
        `a ${name} instance has no declared encoding; give ${name} a [cacheKey]() method or pass a \`key\` option`,
      );
    }
    if (Object.getOwnPropertySymbols(value).length > 0)
      throw new CacheKeyError(path, 'symbol-keyed properties have no stable encoding');
    const keys = Object.keys(value).sort();
    this.#tag('o', String(keys.length));
    for (const k of keys) {
      this.#tag('s', k);
      this.encode((value as Record<string, unknown>)[k], `${path}.${k}`);
    }
  }
}

function bytesOf(view: ArrayBufferView): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

function describeKey(k: unknown): string {
  return typeof k === 'string' ? JSON.stringify(k) : typeof k === 'object' ? '…' : String(k);
}
