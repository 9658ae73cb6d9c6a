"""A load -> train -> predict pipeline of dependent tasks: each step takes the previous steps'
ObjectRefs as arguments, so it runs as soon as they are ready, without the driver waiting
in between. The model is a least-squares line fitted from per-shard sums (standard library only). Written as Ray's docs
write such programs: `import ray`, no `__main__` guard.

    raysub job submit --working-dir jobs/pipeline --entrypoint-num-cpus 0 -- python3 main.py
"""
import random

import ray

SHARDS = 4


@ray.remote
def load(shard, n=25_000):
    """One shard of the data set: y = 3x + 2 plus noise (synthetic, made here)."""
    rng = random.Random(shard)
    xs = [rng.uniform(-10, 10) for _ in range(n)]
    return [(x, 3 * x + 2 + rng.gauss(0, 1)) for x in xs]


@ray.remote
def sums(rows):
    """Sufficient statistics of one shard for a least-squares line."""
    n = len(rows)
    sx = sum(x for x, _ in rows)
    sy = sum(y for _, y in rows)
    sxx = sum(x * x for x, _ in rows)
    sxy = sum(x * y for x, y in rows)
    return n, sx, sy, sxx, sxy


@ray.remote
def train(*parts):
    n, sx, sy, sxx, sxy = (sum(p[i] for p in parts) for i in range(5))
    slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    return {"slope": slope, "intercept": (sy - slope * sx) / n, "trained_on": n}


@ray.remote
def predict(model, rows):
    errors = [(model["slope"] * x + model["intercept"] - y) ** 2 for x, y in rows]
    return sum(errors) / len(errors)


shards = [load.remote(i) for i in range(SHARDS)]
test = load.remote(99, 5_000)
model = train.remote(*[sums.remote(s) for s in shards])
mse = predict.remote(model, test)
m = ray.get(model)
print("trained on %d rows: y = %.3f x + %.3f" % (m["trained_on"], m["slope"], m["intercept"]))
print("mean squared error on held-out data: %.3f" % ray.get(mse))
