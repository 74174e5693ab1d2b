"""bench/bag_bench.py: Python's side of the bag workloads (bench/run json2text, wordcount).

    bag_bench.py make_papers DIR N    N JSON papers of 20 to 200 KB (the structure of
                                      examples/09_json2text.c's corpus), once
    bag_bench.py make_text FILE MB    about MB megabytes of lines of words, once
    bag_bench.py json2text DIR OUT    the course's method (Pool.map of write_file, chunk
                                      sizes 1, 16, 256, 2 processes), dask.bag (processes,
                                      2 workers) and the folder's read rate (page cache warm)
    bag_bench.py wordcount FILE       collections.Counter over Pool.map (2 processes) and
                                      dask.bag's frequencies (processes, 2 workers)
    bag_bench.py make_records FILE N  N JSON lines {"id", "key" (10,000 values), "x"}, once
    bag_bench.py groupby FILE         dask.bag's groupby by "key" (tasks shuffle, processes,
                                      2 workers): seconds, groups, records, peak RSS

Prints "NAME VALUE" lines. Each method writes the same text files, or counts the same
words (runs of ASCII letters, lowercased), as cask's examples do.
"""
import collections
import glob
import json
import multiprocessing
import os
import random
import re
import sys
import time

OUT = None


def paragraph(rng, words):
    w = ["the", "cell", "protein", "binding", "of", "viral", "response", "and", "model",
         "data", "in", "patients"]
    return {"text": " ".join(rng.choice(w) for _ in range(words)), "section": "Results"}


def make_papers(d, n):
    os.makedirs(d, exist_ok=True)
    rng = random.Random(1)
    for i in range(n):
        body, size, target = [], 0, rng.randrange(20000, 200000)
        while size < target:
            k = rng.randrange(60, 260)
            body.append(paragraph(rng, k))
            size += 7 * k + 40
        pid = "paper%05d" % i
        doc = {"paper_id": pid, "metadata": {"title": pid},
               "abstract": [paragraph(rng, rng.randrange(40, 120))], "body_text": body}
        with open(os.path.join(d, pid + ".json"), "w") as f:
            json.dump(doc, f, indent=1)


def write_file(path):
    """The course's function: one paper to its text file."""
    with open(path) as f:
        doc = json.load(f)
    text = doc["metadata"]["title"] + "\n\n"
    text += "".join(p["text"] + "\n\n" for p in doc["abstract"])
    text += "".join(p["text"] + "\n\n" for p in doc["body_text"])
    name = os.path.basename(path).split(".")[0] + ".txt"
    with open(os.path.join(OUT, name), "w") as f:
        f.write(text)
    return 1


def init(out):
    global OUT
    OUT = out


def json2text(d, out):
    files = sorted(glob.glob(os.path.join(d, "*.json")))
    figs = {}
    best = None
    for chunk in (1, 16, 256):
        t0 = time.perf_counter()
        with multiprocessing.Pool(2, initializer=init, initargs=(out,)) as pool:
            n = sum(pool.map(write_file, files, chunksize=chunk))
        t = time.perf_counter() - t0
        assert n == len(files)
        figs["json2text.poolmap.c%d_s" % chunk] = t
        best = t if best is None else min(best, t)
    figs["json2text.poolmap.s"] = best
    import dask
    import dask.bag as db
    init(out)
    t0 = time.perf_counter()
    n = db.from_sequence(files, npartitions=8).map(write_file).sum().compute(
        scheduler="processes", num_workers=2)
    figs["json2text.dask.s"] = time.perf_counter() - t0
    assert n == len(files)
    mb, t0 = 0, time.perf_counter()
    for p in files:
        with open(p, "rb") as f:
            mb += len(f.read()) / 1e6
    figs["json2text.limit.read_mbs"] = mb / (time.perf_counter() - t0)
    return figs


def make_text(path, mb):
    rng = random.Random(2)
    words = ["the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was",
             "with", "be", "by", "on", "not", "he", "this", "are", "or", "his", "from", "at",
             "which", "but", "have", "an", "had", "they"]
    weights = [1 / (k + 1) for k in range(len(words))]
    block = []
    for _ in range(100000):
        block.append(" ".join(rng.choices(words, weights, k=rng.randrange(3, 15))) + ".\n")
    block = "".join(block)
    with open(path + ".tmp", "w") as f:  # renamed when whole, as make_records
        done = 0
        while done < mb * 1e6:
            f.write(block)
            done += len(block)
    os.replace(path + ".tmp", path)


WORD = re.compile(r"[a-z]+")


def count_lines(lines):
    c = collections.Counter()
    for line in lines:
        c.update(WORD.findall(line.lower()))
    return c


def words_of(part):
    return [w for line in part for w in WORD.findall(line.lower())]


def wordcount(path):
    figs = {}
    t0 = time.perf_counter()
    with open(path) as f:
        lines = f.readlines()
    chunks = [lines[i:i + 100000] for i in range(0, len(lines), 100000)]
    with multiprocessing.Pool(2) as pool:
        total = collections.Counter()
        for c in pool.map(count_lines, chunks):
            total.update(c)
    top = total.most_common(20)
    figs["wordcount.poolmap.s"] = time.perf_counter() - t0
    del lines, chunks
    import dask.bag as db
    t0 = time.perf_counter()
    dtop = db.read_text(path, blocksize="32MB").map_partitions(words_of).frequencies() \
        .topk(20, key=1).compute(scheduler="processes", num_workers=2)
    figs["wordcount.dask.s"] = time.perf_counter() - t0
    assert sorted(c for _, c in top) == sorted(c for _, c in dtop)
    return figs


def make_records(path, n):
    """Written under a temporary name, then renamed: an interrupted run
    leaves no file that bench/run would take for a whole one."""
    rng = random.Random(3)
    with open(path + ".tmp", "w") as f:
        for lo in range(0, n, 100000):
            f.write("".join('{"id":%d,"key":"k%05d","x":%.4f}\n'
                            % (i, rng.randrange(10000), rng.random())
                            for i in range(lo, min(n, lo + 100000))))
    os.replace(path + ".tmp", path)


def key_of(r):
    return r["key"]


def group_len(kv):
    return len(kv[1])


def groupby(path):
    """The groups and their records counted, so the whole shuffle runs and
    is checked; peak RSS is this process's plus its largest worker's."""
    import concurrent.futures
    import resource
    import dask
    import dask.bag as db
    t0 = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        g = db.read_text(path, blocksize="32MB").map(json.loads) \
            .groupby(key_of, shuffle="tasks")
        groups, records = dask.compute(g.count(), g.map(group_len).sum(),
                                       scheduler="processes", pool=pool)
    t = time.perf_counter() - t0
    assert (groups, records) == (10000, sum(1 for _ in open(path))), (groups, records)
    peak = sum(resource.getrusage(w).ru_maxrss
               for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024
    return {"groupby.dask.s": t, "groupby.dask.groups": groups,
            "groupby.dask.records": records, "groupby.dask.peak_rss_mb": peak}


def main():
    cmd = sys.argv[1]
    if cmd == "make_papers":
        make_papers(sys.argv[2], int(sys.argv[3]))
        figs = {}
    elif cmd == "make_text":
        make_text(sys.argv[2], int(sys.argv[3]))
        figs = {}
    elif cmd == "make_records":
        make_records(sys.argv[2], int(sys.argv[3]))
        figs = {}
    elif cmd == "groupby":
        figs = groupby(sys.argv[2])
    elif cmd == "json2text":
        figs = json2text(sys.argv[2], sys.argv[3])
    else:
        figs = wordcount(sys.argv[2])
    for k, v in figs.items():
        print(k, "%.4f" % v)


if __name__ == "__main__":
    main()
