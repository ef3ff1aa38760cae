/**
 * JSON Schema (as zod writes it) → a Kubernetes structural schema (apiextensions.k8s.io/v1).
 *
 * A CRD's schema is OpenAPI v3 with rules of its own: every node has a type, no `$ref`, no
 * `additionalProperties: false` next to `properties` (unknown fields are pruned, and rejected by
 * `kubectl apply`'s strict field validation), `anyOf` only without types inside except for the
 * int-or-string form, no `const`. And CEL rules are costed by the API server from the worst case:
 * every string needs a `maxLength`, every list a `maxItems`, every map a `maxProperties`, or a rule
 * that walks them is refused as too expensive. Bounds the zod schema leaves open get the defaults here.
 */
import { sizeRules } from './rules.js';

export type Schema = { [key: string]: unknown };

export interface StructuralOptions {
  /** `maxLength` of strings without one. */
  maxLength: number;
  /** `maxItems` of lists without one. */
  maxItems: number;
  /** `maxProperties` of maps without one. */
  maxProperties: number;
}

const DROPPED = new Set(['$schema', '$id', 'id', 'title', 'examples']);
/** The formats the API server knows; zod's others (`uri`, `email`…) would be rejected or ignored. */
const FORMATS = new Set(['int32', 'int64', 'float', 'double', 'byte', 'date', 'date-time', 'duration']);

export function structural(root: Schema, options: StructuralOptions): Schema {
  const defs = (root.$defs ?? {}) as Record<string, Schema>;
  const visit = (schema: Schema, seen: readonly string[]): Schema => {
    if (typeof schema.$ref === 'string') {
      const name = schema.$ref.replace('#/$defs/', '');
      if (seen.includes(name)) throw new Error(`the schema is recursive through ${name}: a CRD cannot be`);
      const target = defs[name];
      if (!target) throw new Error(`unknown $ref ${schema.$ref}`);
      const { $ref: _, ...rest } = schema;
      return visit({ ...target, ...rest }, [...seen, name]);
    }
    const out: Schema = {};
    for (const [key, value] of Object.entries(schema)) {
      if (DROPPED.has(key) || key === '$defs') continue;
      if (key === 'format' && !FORMATS.has(value as string)) continue;
      if (key === 'additionalProperties' && value === false) continue;
      if (key === 'pattern') {
        Object.assign(out, patternOf(value as string));
        continue;
      }
      if (key === 'const') {
        out.enum = [value];
        continue;
      }
      if (key === 'properties') {
        out.properties = Object.fromEntries(
          Object.entries(value as Record<string, Schema>).map(([k, v]) => [k, visit(v, seen)]),
        );
        continue;
      }
      if (key === 'items' || (key === 'additionalProperties' && typeof value === 'object')) {
        out[key] = visit(value as Schema, seen);
        continue;
      }
      if (key === 'anyOf' || key === 'oneOf') {
        Object.assign(
          out,
          alternatives(
            schema,
            (value as Schema[]).map((v) => visit(v, seen)),
          ),
        );
        continue;
      }
      out[key] = value;
    }
    // JSON Schema's exclusiveMinimum is a number; OpenAPI v3.0's is a flag beside minimum.
    if (typeof out.exclusiveMinimum === 'number') {
      out.minimum = out.exclusiveMinimum;
      out.exclusiveMinimum = true;
    }
    if (out.type === 'integer') {
      // 2^53 - 1 (zod's safe-integer bounds) adds nothing the API server's int64 lacks.
      if (out.maximum === Number.MAX_SAFE_INTEGER) delete out.maximum;
      if (out.minimum === Number.MIN_SAFE_INTEGER) delete out.minimum;
    }
    if (out.type === 'string' && out.maxLength === undefined && out.enum === undefined)
      out.maxLength = options.maxLength;
    if (out.type === 'array' && out.maxItems === undefined) out.maxItems = options.maxItems;
    if (out.type === 'object' && out.additionalProperties !== undefined && out.maxProperties === undefined)
      out.maxProperties = options.maxProperties;
    return out;
  };

  /** The one union a structural schema takes: integer or string (a size), else a single type. */
  const alternatives = (parent: Schema, options: Schema[]): Schema => {
    const types = options.map((o) => o.type);
    if (options.length === 2 && types.includes('integer') && types.includes('string')) {
      // A size. Validations inside the anyOf of an int-or-string are not structural: one CEL rule
      // checks both sides.
      const text = options.find((o) => o.type === 'string') as Schema;
      return {
        'x-kubernetes-int-or-string': true,
        // Bounds the string side, for the rule's cost.
        maxLength: 64,
        'x-kubernetes-validations': sizeRules(String(text.pattern ?? '^.*$')),
      };
    }
    if (options.length === 1) return options[0] as Schema;
    throw new Error(`a union a CRD cannot express: ${JSON.stringify(parent).slice(0, 200)}`);
  };

  return visit(root, []);
}

/**
 * The API server's patterns are RE2: no lookaround. The library's "no secret in a URL" patterns
 * start with a negative lookahead over the whole string (`^(?![\s\S]*X)REST`): that part becomes a
 * CEL rule (`!self.matches('X')`), the rest stays the pattern. Any other lookaround is refused, so
 * a pattern is never silently dropped.
 */
function patternOf(pattern: string): Schema {
  const m = /^\^\(\?!\[\\s\\S\]\*(.+?)\)(.*)$/.exec(pattern);
  if (m) {
    const [, banned, rest] = m as unknown as [string, string, string];
    return {
      pattern: `^${rest}`,
      'x-kubernetes-validations': [
        {
          rule: `!self.matches(${JSON.stringify(banned)})`,
          message: `must not match /${banned}/ (credentials never go there: use the Secret reference)`,
        },
      ],
    };
  }
  if (/\(\?[=!<]/.test(pattern)) throw new Error(`a pattern RE2 cannot run: ${pattern}`);
  return { pattern };
}
