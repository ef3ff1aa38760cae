/**
 * A short description of any value for an error message: a string JSON-quoted, other primitives as
 * written in JavaScript, objects by kind. It never throws and is at most about `max` characters (a
 * string is cut, then JSON-escaped: up to 6 characters each), whatever the value: an error about a
 * bad input must not fail on the input (`String({ toString: 0 })` throws, as does `String` of an
 * object without a prototype, both of which a client can send as JSON), nor copy megabytes of it.
 */
export function describeValue(value: unknown, max = 200): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value.length > max ? `${value.slice(0, max)}…` : value);
    case 'number':
    case 'boolean':
    case 'undefined':
      return String(value);
    case 'bigint':
      return cut(`${value}n`, max);
    case 'symbol':
      // String(symbol) reads the description without calling anything a caller could replace.
      return cut(String(value), max);
    case 'function':
      return 'a function';
  }
  if (value === null) return 'null';
  try {
    // Throws for a revoked Proxy, so the only step that asks the object anything is guarded.
    return Array.isArray(value) ? 'an array' : 'an object';
  } catch {
    return 'an object';
  }
}

function cut(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
