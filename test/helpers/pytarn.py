"""Runs operations with the original Python tarn (the PyPI package) for the compatibility tests.

Usage: python pytarn.py < ops.json (a JSON list of ops); prints a JSON list of results.
The digest is left to the lake's config.yml, as a Python user would.
"""
import base64
import json
import sys

from tarn import DiskDict, HashKeyStorage


def run(op):
    kind = op['op']
    root = op['root']
    if kind == 'init':
        # DiskDict creates config.yml when it is missing, like HashKeyStorage(root) does.
        DiskDict(root, levels=op.get('levels'))
        return None
    if kind == 'write':
        storage = HashKeyStorage(root)
        return storage.write(base64.b64decode(op['data'])).hex()
    if kind == 'write_file':
        return HashKeyStorage(root).write(op['path']).hex()
    if kind == 'read':
        storage = HashKeyStorage(root)
        with storage.read(op['key'], error=False) as value:
            if value is None:
                return None
            return base64.b64encode(value.read_bytes()).decode()
    if kind == 'keys':
        return sorted(key.hex() for key, _, _ in DiskDict(root).contents())
    if kind == 'delete':
        return DiskDict(root).delete(bytes.fromhex(op['key']))
    raise ValueError(kind)


print(json.dumps([run(op) for op in json.load(sys.stdin)]))
