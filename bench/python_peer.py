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
elif kind == 'serial':
    # One at a time, as a script or a memoised function calls: per-operation timings.
    import statistics
    from tarn import smart_cache

    def timed(fn, items):
        times = []
        out = []
        for x in items:
            t = time.perf_counter()
            out.append(fn(x))
            times.append(time.perf_counter() - t)
        return out, {'mean': sum(times) / len(times), 'p50': statistics.median(times)}

    def read_path(k):
        with storage.read(k) as path:
            return path

    def read_bytes(k):
        with storage.read(k) as path:
            return path.read_bytes()

    result = {}
    keys, result['write(path), new'] = timed(storage.write, args['files'])
    _, result['write(bytes), new'] = timed(storage.write, [os.urandom(1024) for _ in args['files']])
    values = [open(f, 'rb').read() for f in args['files']]
    _, result['write(bytes), stored'] = timed(storage.write, values)
    _, result['read -> path'] = timed(read_path, keys)
    _, result['read -> bytes'] = timed(read_bytes, keys)

    cache = smart_cache(args['cache'])

    @cache
    def record(i):
        # The same 20 fields as bench/cases/memo.ts's profile().
        return {
            'id': i, 'name': f'user-{i}', 'email': f'user-{i}@example.com', 'active': i % 2 == 0,
            'score': i * 1.5, 'created': f'2026-01-{i % 28 + 1:02d}T00:00:00.000Z',
            'tags': ['alpha', 'beta', 'gamma', 'delta'],
            'address': {'street': f'{i} Main Street', 'city': 'Springfield', 'zip': str(10000 + i), 'country': 'US'},
            'roles': ['reader', 'writer'], 'quota': {'used': i * 1024, 'limit': 1 << 30},
            'bio': 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris.',
            'locale': 'en-US', 'timezone': 'America/Chicago', 'theme': 'dark',
            'lastLogin': 1_767_225_600_000 + i, 'logins': i * 7,
            'flags': {'beta': True, 'newsletter': False, 'twoFactor': True},
            'avatar': f'https://cdn.example.com/avatars/{i}.png',
            'notes': 'Prefers email contact; account migrated from the legacy system in 2024; no open tickets.',
            'version': 3,
        }

    @cache
    def square(x):
        return x * x

    for name, fn in (('smart_cache hit, object', record), ('smart_cache hit, number', square)):
        fn(7)
        fn(7)
        _, result[name] = timed(fn, [7] * args['calls'])
    print(json.dumps(result))
