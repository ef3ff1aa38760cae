import { type Node, parse } from 'acorn';
import { full } from 'acorn-walk';
import { MemoError } from './errors.js';

/** What a function's code says about itself: its normalised text and the names it uses. */
export interface FunctionSource {
  /** The syntax tree of the source, without comments or formatting: equal for equal code. */
  normalised: string;
  /** Every identifier the code mentions (a superset of the free variables: safe for dependencies). */
  names: Set<string>;
  /** `a.b` member accesses on plain identifiers, as `a.b` (for namespace imports). */
  members: Set<string>;
}

const OPTIONS = { ecmaVersion: 'latest', allowHashBang: true } as const;

/**
 * Reads a function's code (`fn.toString()`): functions, arrows, async and generator functions,
 * methods and classes. Native and bound functions have no code to read, so they cannot be
 * fingerprinted (a MemoError): cache a plain function that calls them instead.
 */
export function readFunction(fn: (...args: never[]) => unknown): FunctionSource {
  // A function's code cannot change while it lives; helpers shared by many cached functions are parsed once.
  let read = parsed.get(fn);
  if (!read) {
    read = readCode(fn);
    parsed.set(fn, read);
  }
  return read;
}

const parsed = new WeakMap<(...args: never[]) => unknown, FunctionSource>();

function readCode(fn: (...args: never[]) => unknown): FunctionSource {
  const text = Function.prototype.toString.call(fn);
  if (/\{\s*\[native code\]\s*\}$/.test(text)) {
    throw new MemoError(
      `${fn.name || 'this function'} is native or bound: its code cannot be read, so it cannot be fingerprinted`,
    );
  }
  // A method (`f() {}`, `async *g() {}`, `get x() {}`) is not an expression on its own; in an object literal it is.
  for (const wrapped of [`(${text}\n)`, `({${text}\n})`]) {
    let ast: Node;
    try {
      ast = parse(wrapped, OPTIONS);
    } catch (e) {
      if (exhausted(e)) throw tooDeep(fn, e);
      continue;
    }
    try {
      return { normalised: normalise(ast), ...namesOf(ast) };
    } catch (e) {
      if (exhausted(e)) throw tooDeep(fn, e);
      throw e;
    }
  }
  throw new MemoError(`cannot parse the code of ${fn.name || 'a function'}`);
}

/** The stack ran out: a RangeError, or acorn's SyntaxError for it ("Not enough stack space to parse input"). */
function exhausted(e: unknown): e is Error {
  return e instanceof RangeError || (e instanceof SyntaxError && /not enough stack space/i.test(e.message));
}

/**
 * The parser, the normalisation and the walk recurse along the syntax tree, so code that V8 runs
 * (deep brackets, or a chain of thousands of `+` or `.a`, which is a deep tree) can exhaust the stack.
 * Such code is generated, not written: a clear refusal is better than a RangeError from our insides.
 */
function tooDeep(fn: (...args: never[]) => unknown, cause: Error): MemoError {
  const name = fn.name || 'this function';
  return new MemoError(
    `the code of ${name} nests too deeply to be read (${cause.message}), so it cannot be fingerprinted; ` +
      `cache a small function that calls it instead (and bump \`version\` when ${name} changes)`,
    { cause },
  );
}

/**
 * The syntax tree without positions, raw literal text or comments: formatting, comments, quotes,
 * optional semicolons, parentheses and trailing commas do not change it; code changes do.
 */
function normalise(ast: Node): string {
  return JSON.stringify(ast, (key, value) => {
    if (key === 'start' || key === 'end' || key === 'loc' || key === 'range' || key === 'raw')
      return undefined;
    if (typeof value === 'bigint') return `${value}n`;
    if (value instanceof RegExp) return String(value);
    return value;
  });
}

function namesOf(ast: Node): { names: Set<string>; members: Set<string> } {
  const names = new Set<string>();
  const members = new Set<string>();
  full(ast, (node) => {
    if (node.type === 'Identifier') names.add((node as unknown as { name: string }).name);
    else if (node.type === 'MemberExpression') {
      const m = node as unknown as {
        object: { type: string; name?: string };
        property: { type: string; name?: string };
        computed: boolean;
      };
      if (m.object.type === 'Identifier' && !m.computed && m.property.type === 'Identifier')
        members.add(`${m.object.name}.${m.property.name}`);
    }
  });
  return { names, members };
}

/** The import bindings of a module: local name → where it comes from. */
export interface ImportBinding {
  from: string;
  /** The exported name, `default`, or `*` for a namespace import. */
  imported: string;
}

/**
 * Reads a module's static imports. JavaScript is parsed exactly; other sources (TypeScript) fall
 * back to a scan of `import … from '…'` statements, which is all the resolution needs.
 */
export function readImports(code: string): Map<string, ImportBinding> {
  const bindings = new Map<string, ImportBinding>();
  try {
    const ast = parse(code, { ...OPTIONS, sourceType: 'module' }) as unknown as {
      body: Array<{ type: string; source?: { value: string }; specifiers?: unknown[] }>;
    };
    for (const statement of ast.body) {
      if (statement.type !== 'ImportDeclaration' || !statement.source) continue;
      for (const s of statement.specifiers as Array<{
        type: string;
        local: { name: string };
        imported?: { name?: string; value?: string };
      }>) {
        const imported =
          s.type === 'ImportNamespaceSpecifier'
            ? '*'
            : s.type === 'ImportDefaultSpecifier'
              ? 'default'
              : (s.imported?.name ?? s.imported?.value ?? s.local.name);
        bindings.set(s.local.name, { from: statement.source.value, imported });
      }
    }
    return bindings;
  } catch {
    return scanImports(code);
  }
}

const IMPORT = /(?:^|[;\n])\s*import\s+(?!type\s)([\w$\s{},*]+?)\s+from\s+['"]([^'"]+)['"]/g;

function scanImports(code: string): Map<string, ImportBinding> {
  const bindings = new Map<string, ImportBinding>();
  const text = code.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  for (const [, clause = '', from = ''] of text.matchAll(IMPORT)) {
    const namespace = /\*\s+as\s+([\w$]+)/.exec(clause);
    if (namespace?.[1]) bindings.set(namespace[1], { from, imported: '*' });
    const named = /\{([^}]*)\}/.exec(clause);
    for (const part of named?.[1]?.split(',') ?? []) {
      const m = /^\s*(?:type\s+)?([\w$]+)(?:\s+as\s+([\w$]+))?\s*$/.exec(part);
      if (m?.[1] && !/^\s*type\s/.test(part)) bindings.set(m[2] ?? m[1], { from, imported: m[1] });
    }
    const def = /^\s*([\w$]+)\s*(?:,|$)/.exec(clause);
    if (def?.[1]) bindings.set(def[1], { from, imported: 'default' });
  }
  return bindings;
}
