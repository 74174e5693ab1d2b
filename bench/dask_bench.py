"""bench/dask_bench.py: Dask's side of bench/run, same shapes as cask_bench.

Run with Debian's /usr/bin/python3 (python3-dask). Prints "FIGURE VALUE" lines.
    dask_bench.py build          delayed graph of 100,000 tasks feeding one sum, scaled to 1M
    dask_bench.py SHAPE SCHED    wide / chain / tree on Dask's sync, threads (2 workers)
                                 or processes (2 workers) scheduler
Processes runs use smaller graphs (PROC_TASKS), or one would take minutes;
the figure is tasks per second either way.
"""
import statistics
import sys
import time
from operator import add

import dask
import dask.multiprocessing
import dask.threaded
from dask.local import get_sync

# Tasks per shape on the processes scheduler (about 1 ms a task there).
PROC_TASKS = {"wide": 5_000, "chain": 5_000, "tree": 4_096}


def wide(n=100_000):
    dsk = {("a", i): (add, i, 1) for i in range(n)}
    dsk["sum"] = (sum, [("a", i) for i in range(n)])
    return dsk, "sum"


def chain(n=100_000):
    dsk = {("c", 0): (add, 0, 0)}
    for i in range(1, n):
        dsk[("c", i)] = (add, ("c", i - 1), 1)
    return dsk, ("c", n - 1)


def tree(leaves=65_536):
    dsk = {("t", 0, i): (add, i, 0) for i in range(leaves)}
    level, w = 0, leaves
    while w > 1:
        for i in range(w // 2):
            dsk[("t", level + 1, i)] = (add, ("t", level, 2 * i), ("t", level, 2 * i + 1))
        level, w = level + 1, w // 2
    return dsk, ("t", level, 0)


def timed(fn, reps):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    what = sys.argv[1]
    if what == "build":
        n = 100_000
        def build():
            parts = [dask.delayed(add)(i, 1) for i in range(n)]
            return dask.delayed(sum)(parts)
        t = timed(build, 3)
        print(f"build.dask.s_per_1m_tasks {t * 1_000_000 / (n + 1):.4f}")
        return
    shape, sched = what, sys.argv[2]
    make = {"wide": wide, "chain": chain, "tree": tree}[shape]
    dsk, out = make(PROC_TASKS[shape]) if sched == "processes" else make()
    get = {"sync": get_sync,
           "threads": lambda d, o: dask.threaded.get(d, o, num_workers=2),
           "processes": lambda d, o: dask.multiprocessing.get(d, o, num_workers=2,
                                                                optimize_graph=False)}.get(sched)
    if get is None:
        raise SystemExit(f"unknown scheduler {sched}")
    sys.setrecursionlimit(1_000_000)
    t = timed(lambda: get(dsk, out), 3)
    print(f"{shape}.{sched}.dask.tasks_per_s {len(dsk) / t:.0f}")
    print(f"{shape}.{sched}.dask.tasks {len(dsk)}")


if __name__ == "__main__":
    main()
