"""The workloads of scripts/bench-tasks.mjs, the same code for raysub and for Ray: under raysub
`import ray` is raysub's library; under Ray's virtualenv it is Ray itself.

    python3 bench_tasks.py raysub [WORKLOADS]      # inside a raysub job
    python3 bench_tasks.py ray CPUS [WORKLOADS]    # Ray, ray.init(num_cpus=CPUS) on this machine

WORKLOADS is a comma-separated list of the names in WORKLOADS below (default: all). Each workload
is warmed up once (a smaller run of the same code: workers started, every path taken), then timed
once; the script prints one `BENCH {...}` line with the seconds of each.
"""
import json
import sys
import time

import ray

try:
    import numpy as np
except ImportError as e:  # the numpy rows are skipped, saying why
    np = None
    NUMPY_MISSING = "numpy cannot be imported by %s: %s" % (sys.executable, e)
else:
    NUMPY_MISSING = None

MIB = 1 << 20


@ray.remote
def nothing(i):
    return i


@ray.remote
def one_mib(i):
    return bytes(MIB)


@ray.remote
def total(a):
    return float(a.sum())


@ray.remote
def ones(n):
    return np.ones(n)


@ray.remote
def fib(n):
    # Every call is a task, waiting on its two children.
    if n < 2:
        return n
    return sum(ray.get([fib.remote(n - 1), fib.remote(n - 2)]))


@ray.remote
class Counter:
    def __init__(self):
        self.n = 0

    def inc(self):
        self.n += 1
        return self.n


def tiny(scale):
    n = 5000 if scale else 200
    refs = [nothing.remote(i) for i in range(n)]
    assert ray.get(refs) == list(range(n))


def sync(scale):
    for i in range(500 if scale else 20):
        assert ray.get(nothing.remote(i)) == i


def results_1mib(scale):
    n = 1000 if scale else 20
    values = ray.get([one_mib.remote(i) for i in range(n)])
    assert sum(len(v) for v in values) == n * MIB


_arrays = {}


def put_80mb(scale):
    # The array is made before the clock starts (not timed): put, then read (summed) by 3 tasks.
    a, expected = _arrays["put"] if scale else (np.ones(MIB // 8), MIB // 8)
    ref = ray.put(a)
    assert ray.get([total.remote(ref) for _ in range(3)]) == [expected] * 3


def return_40mb(scale):
    n = 5_000_000 if scale else MIB // 8
    a = ray.get(ones.remote(n))
    assert a.shape == (n,) and float(a.sum()) == n


_actor = {}


def actor_async(scale):
    c = _actor.setdefault("c", Counter.remote())
    n = 2000 if scale else 100
    values = ray.get([c.inc.remote() for _ in range(n)])
    assert values == list(range(values[0], values[0] + n))


def actor_sync(scale):
    c = _actor.setdefault("c", Counter.remote())
    prev = ray.get(c.inc.remote())
    for _ in range(500 if scale else 20):
        v = ray.get(c.inc.remote())
        assert v == prev + 1
        prev = v


def nested(scale):
    # fib(10) is 177 tasks; the warm-up, fib(4), 9.
    n = 10 if scale else 4
    assert ray.get(fib.remote(n)) == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55][n]


# name: (function, needs numpy)
WORKLOADS = {
    "tiny": (tiny, False),
    "sync": (sync, False),
    "actor_async": (actor_async, False),
    "actor_sync": (actor_sync, False),
    "nested": (nested, False),
    "results_1mib": (results_1mib, False),
    "put_80mb": (put_80mb, True),
    "return_40mb": (return_40mb, True),
}


def run(names):
    out = {"seconds": {}, "skipped": {}}
    for name in names:
        fn, needs_numpy = WORKLOADS[name]
        if needs_numpy and np is None:
            out["skipped"][name] = NUMPY_MISSING
            continue
        if name == "put_80mb":
            a = np.random.default_rng(0).random(10_000_000)
            _arrays["put"] = (a, float(a.sum()))
        fn(False)
        t = time.perf_counter()
        fn(True)
        out["seconds"][name] = time.perf_counter() - t
        _arrays.clear()
    return out


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "raysub"
    rest = sys.argv[2:]
    if which == "ray":
        ray.init(num_cpus=int(rest.pop(0)), include_dashboard=False, log_to_driver=False)
    else:
        ray.init()
    names = rest[0].split(",") if rest and rest[0] else list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        sys.exit("unknown workload(s) %s; known: %s" % (", ".join(unknown), ", ".join(WORKLOADS)))
    result = run(names)
    result.update(system=which, ray=ray.__version__, raysub=bool(getattr(ray, "__raysub__", False)))
    print("BENCH " + json.dumps(result), flush=True)
    ray.shutdown()
