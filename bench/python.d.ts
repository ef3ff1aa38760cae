// Types of bench/python.js for the TypeScript cases.
export function pythonTarn(): boolean;
export function runPython(kind: string, args: Record<string, unknown>): unknown;
