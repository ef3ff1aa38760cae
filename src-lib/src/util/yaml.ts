import { parseDocument } from 'yaml';

/**
 * Parses YAML (or JSON) from a file a user or a remote host controls. Anything the parser only
 * warns about (an unknown `!tag`) is an error too: a warning would be printed on stderr of a shared
 * server for every hostile file, and the value it stands for would be silently dropped. Aliases are
 * bounded (the parser's default of 100), so a "billion laughs" file is refused, not expanded.
 * Throws the parser's message; callers turn it into their own ConfigError.
 */
export function parseYaml(text: string): unknown {
  const doc = parseDocument(text, { logLevel: 'silent' });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) throw new Error(problem.message);
  return doc.toJS({ maxAliasCount: 100 });
}
