"""Times Python tarn 0.14 on the benchmark's workloads; prints JSON seconds."""
import json
import os
import sys
import time

from tarn import HashKeyStorage

kind, args = sys.argv[1], json.loads(sys.argv[2])
storage = HashKeyStorage(args['root'])
if kind == 'large':
    t = time.perf_counter()
    storage.write(args['file'])
    print(json.dumps({'write': time.perf_counter() - t}))
elif kind == 'small':
    values = [os.urandom(1024) for _ in range(args['count'])]
    t = time.perf_counter()
    keys = [storage.write(v) for v in values]
    write = time.perf_counter() - t
    t = time.perf_counter()
    for k in keys:
        with storage.read(k) as path:
            path.read_bytes()
    print(json.dumps({'write': write, 'read': time.perf_counter() - t}))
