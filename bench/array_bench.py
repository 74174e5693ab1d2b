"""bench/array_bench.py: NumPy's and Dask's side of the array workloads in bench/run.

Run with Debian's /usr/bin/python3 (python3-numpy, python3-dask), one workload per
process so the peak RSS is that workload's. Prints "FIGURE VALUE" lines.
    array_bench.py normal_sum numpy|dask   (x*x + 1).sum(), x normal(size=1e8)
    array_bench.py normal_std numpy|dask   x.std()
    array_bench.py transpose_mean numpy|dask   (A + A.T).mean(axis=0), A uniform 8000 x 8000
                                               (Dask: chunks of 1000 x 1000)
    array_bench.py matmul numpy|dask        A @ A, A uniform 4000 x 4000: NumPy on OpenBLAS's
                                            own threads (all cores), Dask in 1000 x 1000
                                            chunks with OPENBLAS_NUM_THREADS=1 (bench/run sets it)
NumPy runs single-threaded in one shot (generation included, as in every row).
Dask uses its threaded scheduler with 2 workers and chunks of 1e6; this Dask
(2022.12) has no da.random.default_rng, so each chunk draws from
da.random.RandomState (NumPy's legacy generator, per chunk).
"""
import resource
import sys
import time

import numpy as np

N = 100_000_000
CHUNK = 1_000_000


def blas_threads():
    import ctypes
    try:
        return ctypes.CDLL("libopenblas.so.0").openblas_get_num_threads()
    except (OSError, AttributeError):
        return -1


def numpy_run(what):
    if what == "matmul":
        a = np.random.default_rng(42).random((4000, 4000))
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            p = a @ a
            times.append(time.perf_counter() - t0)
        return sorted(times)[1], float(p[0, 0])
    t0 = time.perf_counter()
    if what == "transpose_mean":
        a = np.random.default_rng(42).random((8000, 8000))
        v = (a + a.T).mean(axis=0)
        return time.perf_counter() - t0, float(v[0])
    x = np.random.default_rng(42).standard_normal(N)
    v = (x * x + 1).sum() if what == "normal_sum" else x.std()
    return time.perf_counter() - t0, float(v)


def dask_run(what):
    import dask
    import dask.array as da

    if what == "transpose_mean":
        a = da.random.RandomState(42).random_sample((8000, 8000), chunks=(1000, 1000))
        expr = (a + a.T).mean(axis=0)
    elif what == "matmul":
        a = da.random.RandomState(42).random_sample((4000, 4000), chunks=(1000, 1000))
        expr = a @ a
    else:
        x = da.random.RandomState(42).normal(size=N, chunks=CHUNK)
        expr = (x * x + 1).sum() if what == "normal_sum" else x.std()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        (v,) = dask.compute(expr, scheduler="threads", num_workers=2)
        times.append(time.perf_counter() - t0)
    return sorted(times)[1], float(np.ravel(v)[0])


WHATS = ("normal_sum", "normal_std", "transpose_mean", "matmul")


def main():
    what, who = sys.argv[1], sys.argv[2]
    if what not in WHATS or who not in ("numpy", "dask"):
        raise SystemExit("usage: array_bench.py " + "|".join(WHATS) + " numpy|dask")
    s, v = numpy_run(what) if who == "numpy" else dask_run(what)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{what}.{who}.s {s:.4f}")
    print(f"{what}.{who}.peak_mb {peak:.1f}")
    print(f"{what}.{who}.value {v:.10g}")
    if what == "matmul":
        print(f"matmul.{who}.blas_threads {blas_threads()}")


if __name__ == "__main__":
    main()
