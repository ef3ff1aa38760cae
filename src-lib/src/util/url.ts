/**
 * Credentials in URLs. A URL is printed in messages, in `tarn describe` and in logs, and a config
 * file is shared and committed, so user-info (`user:password@host`) is refused where a field for
 * the secret exists, and redacted where it is accepted (a Redis URL given in code).
 */

/**
 * A URL without user-info: no `@` before its query or fragment. Stricter than a URL parser (an `@`
 * in a path is refused too; write it `%40`), so that no parser (WHATWG's, Node's legacy one,
 * ioredis', the AWS SDK's) can find user-info in what passed, and plain enough to be the pattern of
 * the JSON Schema.
 */
export const NO_USER_INFO = /^[^@?#]*(?:[?#][\s\S]*)?$/;

/** Whether `url` (or a bare `host:port`) carries user-info, as NO_USER_INFO defines it. */
export function hasUserInfo(url: string): boolean {
  return !NO_USER_INFO.test(url);
}

/** Query parameters that carry a secret (ioredis takes any client option from the query). */
const SECRET_PARAMS = new Set(['password']);

/** Whether the query of `url` sets a secret option (`?password=…`). */
export function hasSecretParam(url: string): boolean {
  const query = queryOf(url);
  if (query === undefined) return false;
  for (const name of new URLSearchParams(query).keys()) if (SECRET_PARAMS.has(name)) return true;
  return false;
}

/**
 * `url` with its user-info and secret query parameters replaced by `***`:
 * `redis://:pw@host:6379/0?password=pw` → `redis://***@host:6379/0?password=***`. Everything up to
 * the last `@` before the query counts as user-info, so a password holding `/` or `@` is hidden too.
 */
export function redactUrl(url: string): string {
  const end = url.search(/[?#]/);
  const head = end === -1 ? url : url.slice(0, end);
  let tail = end === -1 ? '' : url.slice(end);
  const at = head.lastIndexOf('@');
  let redacted = head;
  if (at !== -1) {
    const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(head)?.[0] ?? '';
    redacted = `${scheme}***${head.slice(at)}`;
  }
  if (tail.startsWith('?') && hasSecretParam(url)) {
    const hash = tail.indexOf('#');
    const query = hash === -1 ? tail.slice(1) : tail.slice(1, hash);
    const params = query.split('&').map((p) => {
      const eq = p.indexOf('=');
      const name = decodeParam(eq === -1 ? p : p.slice(0, eq));
      return SECRET_PARAMS.has(name) ? `${p.slice(0, eq === -1 ? p.length : eq)}=***` : p;
    });
    tail = `?${params.join('&')}${hash === -1 ? '' : tail.slice(hash)}`;
  }
  return redacted + tail;
}

function queryOf(url: string): string | undefined {
  const q = url.search(/[?#]/);
  if (q === -1 || url[q] === '#') return undefined;
  const hash = url.indexOf('#', q);
  return hash === -1 ? url.slice(q + 1) : url.slice(q + 1, hash);
}

function decodeParam(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}
