"""tests/bag_check.py DIR: check cask's bag results against plain Python.

tests/unit/test_bag.c writes, for each case, DIR/out-*.json: the path of its
JSON-lines input and what each bag operation gave (as cask_value_to_json
writes values: a list is {"list": [...]}). This script reads the input alone,
computes every result with plain Python (json, collections) and compares.
A JSON object is a cask string holding its JSON text (cask/bag.h), so such
a record is compared by parsing it. Prints one line per mismatch; exits 1 if
there is any. Runs on Debian's /usr/bin/python3.
"""
import collections
import glob
import json
import math
import os
import sys


def lines_of(path):
    """The lines of a file as cask/bag.h defines them."""
    text = open(path, "rb").read().decode("utf-8")
    parts = text.split("\n")
    ended = [True] * (len(parts) - 1) + [False]  # followed by "\n"
    if parts and parts[-1] == "":
        parts.pop()
    return [p[:-1] if e and p.endswith("\r") else p for p, e in zip(parts, ended)]


def unwrap(v):
    """cask_value_to_json's form to Python: lists unwrapped."""
    if isinstance(v, dict) and set(v) == {"list"}:
        return [unwrap(x) for x in v["list"]]
    return v


def same(want, got):
    """want (a Python value from json) against got (cask's, unwrapped)."""
    if isinstance(want, dict):
        return isinstance(got, str) and json.loads(got) == want
    if isinstance(want, bool):
        return got == int(want)
    if isinstance(want, list):
        return isinstance(got, list) and len(want) == len(got) and all(
            same(w, g) for w, g in zip(want, got))
    if isinstance(want, float) or isinstance(got, float):  # a double for a double only
        return (isinstance(want, float) and isinstance(got, float) and
                math.isclose(want, got, rel_tol=1e-9, abs_tol=1e-6))
    return want == got and type(want) == type(got)


def check(path):
    r = json.load(open(path))
    recs = [json.loads(line) for line in lines_of(r["input"]) if line.strip()]
    k = [x["k"] for x in recs]
    v = [x["v"] for x in recs]
    s = [x["s"] for x in recs]
    nparts = r["npartitions"]
    want = {
        "records": recs,
        "k": k,
        "count": len(recs),
        "sum_v": sum(v),
        "sum_k": sum(k),
        "fold_k_100": sum(k) + 100 * nparts,
        "reduction_count": len(recs),
        "distinct_s": list(dict.fromkeys(s)),
        "top5_v": sorted(v, key=lambda x: -x)[:5],
        "top3_len_s": sorted(s, key=lambda x: -len(x.encode()))[:3],
        "map_double_v": [2 * x for x in v],
        "filter_even": [x for x in recs if x["k"] % 2 == 0],
        "flat_t": [w for x in recs for w in x["t"]],
        "repart_3": recs,
        "repart_more": recs,
        "take_7": recs[:7],
    }
    counts, best = {}, {}  # foldby: by first appearance of each key
    for x in recs:
        counts[x["k"]] = counts.get(x["k"], 0) + 1
        if x["k"] not in best or x["v"] > best[x["k"]]["v"]:
            best[x["k"]] = x
    want["foldby_count"] = [[a, n] for a, n in counts.items()]
    want["foldby_maxv"] = [[a, x] for a, x in best.items()]
    c = collections.Counter(s)
    want["freq_s"] = [[w, n] for w, n in sorted(c.items(), key=lambda kv: -kv[1])]
    want["freq_k"] = [[w, n] for w, n in collections.Counter(k).items()]
    if recs:
        want["min_v"] = min(v)
        want["max_s"] = max(s, key=lambda x: x.encode())
        want["mean_v"] = sum(v) / len(v)
        want["fold_k"] = sum(k)
    bad = 0
    for name, w in want.items():
        got = unwrap(r.get(name))
        if not same(w, got):
            print("%s: %s: want %r, got %r" % (path, name, w, got))
            bad += 1
    # groupby: each key once, its records in bag order
    groups = {}
    for key, grp in unwrap(r["groupby_k"]):
        if key in groups:
            print("%s: groupby_k: key %r twice" % (path, key))
            bad += 1
        groups[key] = grp
    wantg = collections.defaultdict(list)
    for x in recs:
        wantg[x["k"]].append(x)
    if set(groups) != set(wantg) or any(not same(wantg[key], groups[key]) for key in wantg):
        print("%s: groupby_k: want %r, got %r" % (path, dict(wantg), groups))
        bad += 1
    # to_textfiles: the files, in partition order, hold s line by line
    files = unwrap(r["text_files"])
    got = [line for f in files for line in lines_of(f)]
    if len(files) != nparts or got != s:
        print("%s: text_files: want %r in %d files, got %r" % (path, s, nparts, got))
        bad += 1
    return bad


def main(d):
    outs = sorted(glob.glob(os.path.join(d, "out-*.json")))
    if not outs:
        print("no results in", d)
        return 1
    bad = sum(check(p) for p in outs)
    print("bag_check: %d cases, %d mismatches" % (len(outs), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
