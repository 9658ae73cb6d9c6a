"""The task-throughput workload of scripts/bench-tasks.mjs, for raysub or Ray (same code, same CPUs).

    python3 bench_tasks.py raysub      # inside a raysub job
    python3 bench_tasks.py ray 2       # Ray, ray.init(num_cpus=2) on this machine
"""
import json
import sys
import time

# `nothing` travels to the workers by value (as in Ray), so the script's top level runs only here.
which = "ray" if sys.argv[1:2] == ["ray"] else "raysub"
if which == "ray":
    import ray as api
else:
    import raysub as api


@api.remote
def nothing(i):
    return i


def run(n_async, n_sync):
    # Warm-up: workers started and every code path taken once.
    api.get([nothing.remote(i) for i in range(200)])
    for i in range(20):
        api.get(nothing.remote(i))

    t = time.perf_counter()
    refs = [nothing.remote(i) for i in range(n_async)]
    submitted = time.perf_counter() - t
    values = api.get(refs)
    async_s = time.perf_counter() - t
    assert values == list(range(n_async))

    t = time.perf_counter()
    for i in range(n_sync):
        assert api.get(nothing.remote(i)) == i
    sync_s = time.perf_counter() - t
    return {
        "system": which,
        "async_tasks": n_async,
        "async_seconds": async_s,
        "async_submit_seconds": submitted,
        "async_per_s": n_async / async_s,
        "sync_tasks": n_sync,
        "sync_seconds": sync_s,
        "sync_per_s": n_sync / sync_s,
    }


if __name__ == "__main__":
    if which == "ray":
        api.init(num_cpus=int(sys.argv[2]), include_dashboard=False, log_to_driver=False)
    else:
        api.init()
    print("BENCH " + json.dumps(run(5000, 500)), flush=True)
    if which == "ray":
        api.shutdown()
