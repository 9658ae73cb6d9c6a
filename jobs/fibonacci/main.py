"""Fibonacci sequences computed in parallel as Ray tasks, timed against the same work done serially.

Written as Ray's docs write it: `import ray` and no `__main__` guard. Functions defined in this
script travel to the workers by value, so its top level runs once, here in the driver.

    raysub job submit --working-dir jobs/fibonacci --entrypoint-num-cpus 0 -- python3 main.py
"""
import os
import time

import ray

ray.init()

SEQUENCES = int(os.environ.get("SEQUENCES", "8"))
SIZE = int(os.environ.get("SIZE", "40000"))


def generate_fibonacci(sequence_size):
    fibonacci = []
    for i in range(sequence_size):
        if i < 2:
            fibonacci.append(i)
            continue
        fibonacci.append(fibonacci[i - 1] + fibonacci[i - 2])
    return len(fibonacci), fibonacci[-1] % 1_000_000_007


# The same work as a task: each call runs in a warm worker process, on its own CPU.
@ray.remote
def generate_fibonacci_distributed(sequence_size):
    return generate_fibonacci(sequence_size)


start = time.time()
serial = [generate_fibonacci(SIZE) for _ in range(SEQUENCES)]
serial_s = time.time() - start

# One warm-up round starts the workers, as a long-running job would have them already.
ray.get([generate_fibonacci_distributed.remote(10) for _ in range(SEQUENCES)])
start = time.time()
parallel = ray.get([generate_fibonacci_distributed.remote(SIZE) for _ in range(SEQUENCES)])
parallel_s = time.time() - start

assert parallel == serial
print("%d sequences of %d Fibonacci numbers (last one mod 1e9+7: %d)" % (SEQUENCES, SIZE, serial[0][1]))
print("serial:   %.2fs" % serial_s)
print("parallel: %.2fs (%.1fx faster)" % (parallel_s, serial_s / parallel_s))
