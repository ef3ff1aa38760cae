// Verifies a lake and reads some keys with verification, as whatever user runs it (the read-only tests
// run it as nobody). Prints {report, reads}; every outcome is in the JSON, so a crash shows as no output.
// argv: <root> <json list of keys>
import { HashKeyStorage } from '@tarnjs/tarn';

const [root, keys] = process.argv.slice(2);
const storage = new HashKeyStorage(root);
const report = await storage.verify();
const reads = [];
for (const key of JSON.parse(keys)) {
  try {
    // bytes() checks a small value before it returns; a larger one is checked as its stream ends.
    const length = await storage.read(key, async (v) => (await v.bytes()).length, { verify: true });
    reads.push({ key, length });
  } catch (e) {
    reads.push({ key, code: e.code, message: e.message, quarantinedTo: e.quarantinedTo ?? null });
  }
}
process.stdout.write(JSON.stringify({ report, reads }));
