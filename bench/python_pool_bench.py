"""shmbox.Pool against multiprocessing.Pool, both with the same number of worker processes
running Python functions: a task's cost (one apply() at a time: median and p99 in
microseconds), the rate of tiny tasks through map(chunksize=1), and the speedup of a
CPU-bound map over running it in this process. Each figure is the median of --repeat runs,
both pools measured in each run, ratios taken within the run.

    PYTHONPATH=build/release/python python3 bench/python_pool_bench.py [--repeat 5] [--quick]
"""

import argparse
import multiprocessing
import os
import statistics
import time

import shmbox


def identity(x):
    return x


def busy(n):
    """About 5 ms of pure Python."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def apply_latencies(pool, count):
    samples = []
    for n in range(count):
        started = time.perf_counter_ns()
        if pool.apply(identity, (n,)) != n:
            raise SystemExit("a wrong result")
        samples.append((time.perf_counter_ns() - started) / 1000)
    samples = sorted(samples[count // 10:])  # after a warm-up
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


def map_rate(pool, count):
    started = time.perf_counter()
    if pool.map(identity, range(count), chunksize=1) != list(range(count)):
        raise SystemExit("a wrong result")
    return count / (time.perf_counter() - started)


def speedup(pool, tasks, size, serial_seconds):
    started = time.perf_counter()
    pool.map(busy, [size] * tasks, chunksize=1)
    return serial_seconds / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer tasks")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    applies, tiny, heavy = (300, 2_000, 8) if args.quick else (3_000, 20_000, 40)
    size = 50_000 if args.quick else 200_000
    pools = {"shmbox.Pool": lambda: shmbox.Pool(args.workers),
             "multiprocessing.Pool (fork)": lambda: multiprocessing.get_context("fork").Pool(args.workers)}
    results = {name: {key: [] for key in ("start", "median", "p99", "rate", "speedup", "trip_ratio", "rate_ratio")}
               for name in pools}
    for _ in range(args.repeat):
        started = time.perf_counter()
        for _ in range(heavy):
            busy(size)
        serial = time.perf_counter() - started
        this_run = {}
        for name, make in pools.items():
            started = time.perf_counter()
            with make() as pool:
                pool.map(identity, range(args.workers * 4))  # every worker up
                start = time.perf_counter() - started
                median, p99 = apply_latencies(pool, applies)
                this_run[name] = (start, median, p99, map_rate(pool, tiny), speedup(pool, heavy, size, serial))
        base = this_run["multiprocessing.Pool (fork)"]
        for name in pools:
            start, median, p99, rate, gain = this_run[name]
            for key, value in (("start", start), ("median", median), ("p99", p99), ("rate", rate),
                               ("speedup", gain), ("trip_ratio", base[1] / median), ("rate_ratio", rate / base[3])):
                results[name][key].append(value)
    print(f"{args.workers} workers, median of {args.repeat} runs (ratios: to multiprocessing.Pool in the same run)\n")
    print("| pool | start ms | apply() µs: median [p99] | mp's / this | map(chunksize=1) tasks/s | / mp's | "
          f"speedup of {heavy} x 5 ms tasks |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in pools:
        figures = {key: statistics.median(values) for key, values in results[name].items()}
        print(f"| {name} | {figures['start'] * 1000:.0f} | {figures['median']:.1f} [{figures['p99']:.1f}] | "
              f"{figures['trip_ratio']:.1f}x | {figures['rate'] / 1000:.1f}k | {figures['rate_ratio']:.1f}x | "
              f"{figures['speedup']:.2f}x |")


if __name__ == "__main__":
    main()
