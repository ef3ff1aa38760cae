import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type ImportBinding, readFunction, readImports } from './source.js';

// biome-ignore lint/suspicious/noExplicitAny: any function can be marked, whatever its signature
type AnyFunction = (...args: any[]) => unknown;

/** A function whose code belongs to the cache key of every cached function that uses it. */
interface Marked {
  fn: AnyFunction;
  name: string;
  /** The module (file URL) that marked it, when the stack told us. */
  module: string | undefined;
}

/**
 * The marks are process-wide on purpose: `markUnstable` is called where a helper is defined, and
 * `smartCache` must see it wherever the helper is used. Strong references are fine: marked
 * functions are module-level code that lives as long as the process anyway.
 */
const marks = new Map<AnyFunction, Marked>();
const byName = new Map<string, Marked[]>();

/**
 * Marks `fn` as unstable: a change in its code invalidates the cache of every cached function that
 * uses it, directly or through other marked functions. Returns `fn` itself, so it can wrap a
 * definition: `export const area = markUnstable(function area(r) { … })`.
 */
export function markUnstable<F extends AnyFunction>(fn: F, options: { name?: string } = {}): F {
  if (typeof fn !== 'function') throw new TypeError('markUnstable takes a function');
  const name = options.name ?? fn.name;
  if (marks.has(fn)) return fn;
  const mark: Marked = { fn, name, module: callerModule() };
  marks.set(fn, mark);
  if (name) byName.set(name, [...(byName.get(name) ?? []), mark]);
  return fn;
}

/**
 * Marks every function a module exports: `import * as helpers from './helpers.js';
 * markModuleUnstable(helpers)`. Pass the module's URL (`import.meta.url` of the module, or its
 * resolved URL) when you have it, so that names are resolved to this module precisely.
 */
export function markModuleUnstable(namespace: object, moduleUrl?: string): void {
  for (const [name, value] of Object.entries(namespace)) {
    if (typeof value !== 'function' || marks.has(value as AnyFunction)) continue;
    const mark: Marked = { fn: value as AnyFunction, name, module: moduleUrl && normaliseModule(moduleUrl) };
    marks.set(mark.fn, mark);
    byName.set(name, [...(byName.get(name) ?? []), mark]);
  }
}

export function isMarked(fn: AnyFunction): boolean {
  return marks.has(fn);
}

/** The module of the code that called into the library: the first stack frame outside it. */
export function callerModule(): string | undefined {
  const here = new URL('..', import.meta.url).href;
  const original = Error.prepareStackTrace;
  let files: Array<string | undefined> = [];
  try {
    Error.prepareStackTrace = (_e, frames) => frames.map((f) => f.getFileName() ?? undefined);
    const holder: { stack?: unknown } = {};
    Error.captureStackTrace(holder, callerModule);
    files = (holder.stack as Array<string | undefined>) ?? [];
  } finally {
    Error.prepareStackTrace = original;
  }
  for (const file of files) {
    if (!file || file.startsWith('node:')) continue;
    const url = normaliseModule(file);
    if (!url.startsWith(here)) return url;
  }
  return undefined;
}

function normaliseModule(file: string): string {
  const url = /^[a-z]+:\/\//i.test(file) ? file : pathToFileURL(file).href;
  return url.replace(/[?#].*$/, '');
}

/** Module URLs compared without their extension: `./x.js` in a TypeScript import names `x.ts`. */
function sameModule(a: string, b: string): boolean {
  const strip = (u: string) => u.replace(/\.(?:[cm]?[jt]sx?)$/, '');
  return strip(a) === strip(b);
}

const importsCache = new Map<string, Map<string, ImportBinding>>();

function importsOf(module: string | undefined): Map<string, ImportBinding> {
  if (!module?.startsWith('file:')) return new Map();
  let imports = importsCache.get(module);
  if (!imports) {
    try {
      imports = readImports(readFileSync(fileURLToPath(module), 'utf8'));
    } catch {
      imports = new Map();
    }
    importsCache.set(module, imports);
  }
  return imports;
}

/**
 * The marked functions `code` (defined in `module`) uses: each name it mentions is resolved
 * against the module's imports (`import { a as b } from './x.js'`, `import * as ns`) and against
 * the marked functions of the same module. When the module is unknown, any marked function of
 * that name counts: a needless invalidation is safe, a missed one is not.
 */
function directDeps(fn: AnyFunction, module: string | undefined): Marked[] {
  const { names, members } = readFunction(fn);
  const imports = importsOf(module);
  const found = new Set<Marked>();
  const add = (name: string, from: string | undefined) => {
    for (const m of byName.get(name) ?? []) {
      if (m.fn === fn) continue;
      if (from === undefined || m.module === undefined || sameModule(m.module, from)) found.add(m);
    }
  };
  const resolve = (from: string) =>
    from.startsWith('.') || from.startsWith('/') ? new URL(from, module).href : undefined;
  for (const name of names) {
    const binding = imports.get(name);
    if (binding && binding.imported !== '*') add(binding.imported, resolve(binding.from));
    else if (!binding) add(name, module);
  }
  for (const member of members) {
    const [object = '', property = ''] = member.split('.');
    const binding = imports.get(object);
    if (binding?.imported === '*') add(property, resolve(binding.from));
  }
  return [...found];
}

export interface Dependency {
  /** The function's name. Its module is left out of the key: a cache must survive a moved checkout. */
  name: string;
  normalised: string;
}

/**
 * Every marked function `fn` reaches through marked functions (transitively; cycles are fine),
 * plus the explicit `deps`, each with its normalised code.
 */
export function dependencies(
  fn: AnyFunction,
  module: string | undefined,
  deps: AnyFunction[] = [],
): Dependency[] {
  const seen = new Map<AnyFunction, Marked>();
  const queue: Marked[] = [...directDeps(fn, module)];
  for (const d of deps) queue.push(marks.get(d) ?? { fn: d, name: d.name, module: undefined });
  while (queue.length > 0) {
    const next = queue.pop() as Marked;
    if (seen.has(next.fn) || next.fn === fn) continue;
    seen.set(next.fn, next);
    queue.push(...directDeps(next.fn, next.module));
  }
  return [...seen.values()]
    .map((m) => ({ name: m.name, normalised: readFunction(m.fn).normalised }))
    .sort((a, b) => compare(a.name, b.name) || compare(a.normalised, b.normalised));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
