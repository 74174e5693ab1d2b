"""bench/order_bench.py CASK: cask's priority order against dask.order on the same graphs.

Each graph is built with dask.array (Debian's python3-dask, run with /usr/bin/python3) in
the shapes Dask's own ordering tests and issues use; the same tasks and edges go to cask
as a cask-graph file (every task of cost 1 and one unit of output), and `cask simulate`
plays cask's order. Both sides are measured by the same rules as cask's simulator:
  peak   the most outputs alive at once when one worker runs the tasks in the order
         (an output lives from its task's end to the end of its last reader; the graph's
         sinks to the end);
  span   the makespan on 2 workers of unit tasks, a free worker taking the first ready
         task in the order.
Prints "FIGURE VALUE" lines: order.GRAPH.{cask,dask}.{peak,makespan2}.
"""
import heapq
import json
import os
import subprocess
import sys
import tempfile

import dask.array as da
import numpy as np
from dask.core import get_dependencies
from dask.order import order


def graphs():
    """name -> a dask collection, in the shapes of dask's ordering tests."""
    g = {}
    # anomaly: x - x.mean() over the leading axis, then a reduction (dask #6668, #9995)
    x = da.random.random((400, 40), chunks=(10, 40))
    g["anomaly"] = (x - x.mean(axis=0)).std(axis=0)
    # vorticity-like: two fields, neighbours along both axes (test_order's map_overlap cases)
    u = da.random.random((60, 60), chunks=(10, 10))
    v = da.random.random((60, 60), chunks=(10, 10))
    du = u.map_overlap(lambda b: np.gradient(b, axis=0), depth=1, boundary="reflect", dtype=float)
    dv = v.map_overlap(lambda b: np.gradient(b, axis=1), depth=1, boundary="reflect", dtype=float)
    g["vorticity"] = (dv - du).mean()
    # a large rechunk: rows to columns, then a reduction (dask #6668 rechunk cases)
    y = da.random.random((120, 120), chunks=(4, 120))
    g["rechunk"] = y.rechunk((120, 4)).sum(axis=0)
    # a transpose and add, reduced
    z = da.random.random((80, 80), chunks=(10, 10))
    g["transpose"] = (z + z.T).sum()
    # reductions with danglers: blocks read by a tree reduction and a small side consumer
    w = da.random.random((200, 50), chunks=(5, 50))
    g["danglers"] = w.sum() + w.max() + (w[:, 0] > 0.5).sum()
    return g


def export(coll):
    """Keys in a fixed order, each task's dependencies, the sinks."""
    dsk = dict(coll.__dask_graph__())
    keys = sorted(dsk, key=str)
    idx = {k: i for i, k in enumerate(keys)}
    deps = [sorted(idx[d] for d in get_dependencies(dsk, k)) for k in keys]
    users = [0] * len(keys)
    for ds in deps:
        for d in ds:
            users[d] += 1
    sinks = [i for i in range(len(keys)) if not users[i]]
    return dsk, keys, deps, sinks


def play(prio, deps, sinks, workers):
    """(peak alive outputs, makespan) of unit tasks taken in priority order (lower first)."""
    n = len(deps)
    succ = [[] for _ in range(n)]
    for t, ds in enumerate(deps):
        for d in ds:
            succ[d].append(t)
    pend = [len(ds) for ds in deps]
    left = [len(s) for s in succ]
    ready = [(prio[t], t) for t in range(n) if not pend[t]]
    heapq.heapify(ready)
    running, now, alive, peak, done = [], 0, 0, 0, 0
    while done < n:
        while ready and len(running) < workers:
            _, t = heapq.heappop(ready)
            heapq.heappush(running, (now + 1, t))
        now = running[0][0]
        while running and running[0][0] == now:
            _, t = heapq.heappop(running)
            done += 1
            alive += 1  # its output
            peak = max(peak, alive)
            for d in deps[t]:
                left[d] -= 1
                if not left[d]:
                    alive -= 1
            if not succ[t] and t not in sinks:
                alive -= 1
            for s in succ[t]:
                pend[s] -= 1
                if not pend[s]:
                    heapq.heappush(ready, (prio[s], s))
    return peak, now


def cask_side(cask, keys, deps, sinks):
    tasks = [{"key": f"t{i}", "inputs": [{"ref": f"t{d}"} for d in deps[i]], "cost": 1,
              "nbytes": 1} for i in range(len(keys))]
    doc = {"format": "cask-graph", "version": 1, "tasks": tasks,
           "outputs": [f"t{i}" for i in sinks]}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(doc, f)
    try:
        out = subprocess.run([cask, "simulate", f.name, "--workers", "1,2", "--json"],
                             check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(f.name)
    runs = json.loads(out)["runs"]
    return runs[0]["peak_bytes"], runs[1]["makespan"]


def main():
    cask = sys.argv[1]
    for name, coll in graphs().items():
        dsk, keys, deps, sinks = export(coll)
        o = order(dsk)
        prio = [o[k] for k in keys]
        dpeak, _ = play(prio, deps, set(sinks), 1)
        _, dspan = play(prio, deps, set(sinks), 2)
        cpeak, cspan = cask_side(cask, keys, deps, sinks)
        print(f"order.{name}.tasks {len(keys)}")
        print(f"order.{name}.dask.peak {dpeak}")
        print(f"order.{name}.cask.peak {cpeak}")
        print(f"order.{name}.dask.makespan2 {dspan}")
        print(f"order.{name}.cask.makespan2 {cspan:g}")


if __name__ == "__main__":
    main()
