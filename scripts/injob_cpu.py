"""The driver of scripts/bench-injob-cpu.mjs, run as a raysub job: warms up, then runs ROUNDS rounds
of N tiny tasks (`tiny`: all submitted at once, one get; `sync`: one at a time), each round started
and its end told through files in SIGNAL_DIR, so that the benchmark reads the processes' CPU time
right before and right after each round.

    python3 injob_cpu.py SIGNAL_DIR N tiny|sync ROUNDS
"""
import os
import sys
import time

try:
    import ray
except ImportError:  # a checkout from before `import ray` (the round's start)
    import raysub as ray


@ray.remote
def nothing(i):
    return i


def main():
    signals, n, mode, rounds = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])

    def wait(name):
        while not os.path.exists(os.path.join(signals, name)):
            time.sleep(0.02)

    def mark(name):
        open(os.path.join(signals, name), "w").close()

    assert ray.get([nothing.remote(i) for i in range(50)]) == list(range(50))
    for i in range(5):
        ray.get(nothing.remote(i))
    for r in range(rounds):
        mark("ready%d" % r)
        wait("go%d" % r)
        if mode == "tiny":
            assert ray.get([nothing.remote(i) for i in range(n)]) == list(range(n))
        else:
            for i in range(n):
                assert ray.get(nothing.remote(i)) == i
        mark("done%d" % r)
    wait("exit")


if __name__ == "__main__":
    main()
