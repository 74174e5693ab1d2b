"""tests/numpy_check.py MANIFEST: compare cask's array results with NumPy's.

Each manifest line (tab-separated) is one case written by tests/unit/test_array.c:
    ID  EXPR  N  (NAME DTYPE SHAPE OFFSET) x N  OUT_DTYPE OUT_SHAPE OUT_OFFSET RTOL
SHAPE is comma-separated extents ("" for 0-d); OFFSET is where the array's
elements (C order) start in the file "data" beside the manifest. EXPR is
evaluated by NumPy on the inputs; the result must have OUT_DTYPE and OUT_SHAPE
and equal cask's result (exactly when RTOL is 0, else to RTOL relative to the
result's scale). NumPy's warnings (var with ddof >= n, casts of NaN) are
expected by some cases and not printed.
Prints one line per mismatch and exits 1 if there is any.
Run with Debian's /usr/bin/python3 (python3-numpy).
"""
import os
import sys
import warnings

import numpy as np


def shape_of(s):
    return tuple(int(x) for x in s.split(",")) if s else ()


def load(data, dt, shape, offset):
    return np.fromfile(data, dtype=dt, count=int(np.prod(shape)), offset=int(offset)).reshape(shape)


def main(path):
    warnings.simplefilter("ignore", RuntimeWarning)
    data = os.path.join(os.path.dirname(path), "data")
    bad = 0
    cases = 0
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        cid, expr, nin = f[0], f[1], int(f[2])
        env = {"np": np}
        k = 3
        for _ in range(nin):
            name, dt, shp, fn = f[k:k + 4]
            k += 4
            env[name] = load(data, dt, shape_of(shp), fn)
        odt, oshp, ofn, rtol = f[k], shape_of(f[k + 1]), f[k + 2], float(f[k + 3])
        got = load(data, odt, oshp, ofn)
        with np.errstate(all="ignore"):
            want = np.asarray(eval(expr, env))
        cases += 1
        if want.dtype != np.dtype(odt) or want.shape != got.shape:
            print(f"{cid}: {expr}: numpy gives {want.dtype}{want.shape}, cask {odt}{oshp}")
            bad += 1
            continue
        if rtol == 0 or want.dtype == np.bool_ or want.dtype == np.int64:
            ok = np.array_equal(want, got, equal_nan=want.dtype.kind == "f")
        else:
            scale = float(np.nanmax(np.abs(want))) if want.size and np.isfinite(want).any() else 1.0
            ok = np.allclose(got, want, rtol=rtol, atol=rtol * max(scale, 1e-300), equal_nan=True)
        if not ok:
            err = np.nanmax(np.abs(got.astype(np.float64) - want.astype(np.float64))) if want.size else 0
            print(f"{cid}: {expr}: max difference {err:g}\n  numpy {want.ravel()[:6]}\n  cask  {got.ravel()[:6]}")
            bad += 1
    print(f"numpy_check: {cases} cases, {bad} mismatches")
    return 1 if bad or not cases else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
