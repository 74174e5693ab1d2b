"""bench/ooc_bench.py npy|hdf5 PATH: Dask's side of the out-of-core workload in bench/run.

(x - x.mean(axis=0)).std(axis=0) over the file cask_bench ooc_make wrote: a float64 .npy
(da.from_array over np.load(mmap_mode="r")) or the HDF5 dataset /x (da.from_array over
h5py's dataset), in chunks of 8000 rows as cask's, on Dask's threaded scheduler with 2
workers. Run with Debian's /usr/bin/python3 (python3-dask, python3-h5py), one run per
process so the peak RSS is this run's. Prints "FIGURE VALUE" lines.
"""
import os
import resource
import sys
import time

import dask
import dask.array as da
import numpy as np


def main():
    kind, path = sys.argv[1], sys.argv[2]
    if kind == "npy":
        x = da.from_array(np.load(path, mmap_mode="r"), chunks=(8000, 1000))
    elif kind == "hdf5":
        import h5py
        x = da.from_array(h5py.File(path, "r")["x"], chunks=(8000, 1000))
    else:
        raise SystemExit("usage: ooc_bench.py npy|hdf5 PATH")
    t0 = time.perf_counter()
    (v,) = dask.compute((x - x.mean(axis=0)).std(axis=0), scheduler="threads", num_workers=2)
    t = time.perf_counter() - t0
    size = os.path.getsize(path)
    print(f"ooc.{kind}.dask.s {t:.2f}")
    print(f"ooc.{kind}.dask.gbs {size / t * 1e-9:.3f}")
    print(f"ooc.{kind}.dask.peak_rss_mb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
    print(f"ooc.{kind}.dask.value {float(v[0]):.6f}")


if __name__ == "__main__":
    main()
