"""raysub's demo job: estimate pi by Monte Carlo sampling, reporting progress as it goes."""
import os
import platform
import random
import sys
import time

SAMPLES = int(os.environ.get("SAMPLES", "2000000"))
BATCHES = 10

print(f"raysub job {os.environ.get('RAYSUB_JOB_ID')} (task {os.environ.get('RAYSUB_TASK_INDEX')} "
      f"of {os.environ.get('RAYSUB_TASK_COUNT')}) on Python {platform.python_version()}")
rng = random.Random(int(os.environ.get("RAYSUB_TASK_INDEX", "0")))
inside = 0
started = time.time()
for batch in range(1, BATCHES + 1):
    for _ in range(SAMPLES // BATCHES):
        x, y = rng.random(), rng.random()
        inside += x * x + y * y <= 1.0
    done = batch * (SAMPLES // BATCHES)
    print(f"  {done:>9} samples: pi ~ {4 * inside / done:.5f}")
estimate = 4 * inside / SAMPLES
print(f"pi ~ {estimate:.5f} (error {abs(estimate - 3.14159265):.5f}) in {time.time() - started:.1f}s")
sys.exit(0 if abs(estimate - 3.14159265) < 0.01 else 1)
