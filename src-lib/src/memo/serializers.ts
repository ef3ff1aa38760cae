import { deserialize, serialize } from 'node:v8';
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
