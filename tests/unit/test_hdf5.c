/* tests/unit/test_hdf5.c: arrays over HDF5 datasets. Files written by h5py
** (Debian's python3-h5py, with /usr/bin/python3) are read lazily by cask
** and compared with the same data NumPy saved as .npy; arrays cask stores
** are read back by h5py and compared with the bytes cask computed; reads
** touch only the blocks a compute needs; a changed dataset, an unreadable
** type and a failed store are clean errors that leave nothing behind;
** the boxes HDF5 would only copy are read past it, and the others not. */
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "../../collections/array.h" /* cask__ar_h5_direct_reads */

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/cask-h5-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char cmd[4096];
    /* Each dataset, and what cask must read it as in NAME.npy (ints as int64). */
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"\n"
             "import h5py, numpy as np, sys\n"
             "d = sys.argv[1]\n"
             "r = np.random.default_rng(7)\n"
             "sets = {\n"
             "  'f8': (r.standard_normal((23, 17)), (5, 3)),\n"
             "  'f4': (r.standard_normal(10).astype('f4'), None),\n"
             "  'i8': (r.integers(-2**62, 2**62, (9, 4, 3)), (4, 4, 2)),\n"
             "  'i4': (r.integers(-2**31, 2**31 - 1, (31,)).astype('i4'), (8,)),\n"
             "  'i2': (r.integers(-300, 300, (6, 6)).astype('i2'), None),\n"
             "  'u1': (r.integers(0, 255, (12,)).astype('u1'), (5,)),\n"
             "  'u4': (r.integers(0, 2**32 - 1, (7,)).astype('u4'), None),\n"
             "  'b1': (r.random((11, 3)) > 0.5, (4, 2)),\n"
             "  'f8_0d': (np.float64(2.5), None),\n"
             "  'f8_empty': (np.zeros((0, 4)), None),\n"
             "}\n"
             "with h5py.File(d + '/in.h5', 'w') as f:\n"
             "    for k, (a, c) in sets.items():\n"
             "        f.create_dataset('grp/' + k, data=a, chunks=c)\n"
             "        want = a.astype('i8') if a.dtype.kind in 'iu' else a\n"
             "        np.save(d + '/' + k + '.npy', want)\n"
             "    f.create_dataset('s', data=np.array([b'ab', b'cd']))\n"
             "    f.create_dataset('u8', data=np.arange(3, dtype='u8'))\n"
             "    f.create_dataset('c', data=np.zeros(2, dtype=[('a', 'i4'), ('b', 'f8')]))\n"
             "    a = r.standard_normal((20, 6))\n"
             "    f.create_dataset('gz', data=a, chunks=(5, 6), compression='gzip')\n"
             "    np.save(d + '/gz.npy', a)\n"
             "    f.create_dataset('be', data=a.astype('>f8'), chunks=(5, 6))\n"
             "    sp = f.create_dataset('sparse', (20, 6), 'f8', chunks=(5, 6), fillvalue=1.5)\n"
             "    sp[5:10] = a[5:10]\n"
             "    b = np.full((20, 6), 1.5); b[5:10] = a[5:10]\n"
             "    np.save(d + '/sparse.npy', b)\n"
             "    bb = np.zeros((11, 3), 'i1'); bb[9, 1] = 7\n"
             "    f.create_dataset('b1bad', data=bb, chunks=(4, 2),\n"
             "                     dtype=h5py.enum_dtype({'FALSE': 0, 'TRUE': 1}, basetype='i1'))\n"
             "with h5py.File(d + '/ub.h5', 'w', userblock_size=512) as f:\n"
             "    f.create_dataset('x', data=sets['f8'][0], chunks=(5, 3))\n"
             "open(d + '/junk.h5', 'w').write('not hdf5 at all')\n"
             "\" %s", dir);
    return system(cmd) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) ? -1 : 0;
}

static void *compute_all(cask_array_t *a, const char *sched, cask_compute_info_t *info)
{
    cask_error_t err;
    size_t nb = cask_array_size(a) * cask_dtype_size(cask_array_dtype(a));
    void *buf = malloc(nb + 1);
    cask_compute_opts_t o = { .scheduler = sched, .workers = 2, .flags = CASK_TRACE };
    assert_ok(cask_array_compute(&a, 1, &o, &buf, info, &err), &err);
    return buf;
}

/* Every dataset read by cask equals NumPy's copy, with the dataset's own
** chunks and with others, on every scheduler. */
static void test_open_hdf5_vs_numpy(void **state)
{
    (void)state;
    static const struct { const char *name; cask_dtype_t dt; int ndim; int64_t chunk0; } sets[] = {
        { "f8", CASK_F64, 2, 5 }, { "f4", CASK_F32, 1, 10 }, { "i8", CASK_I64, 3, 4 },
        { "i4", CASK_I64, 1, 8 }, { "i2", CASK_I64, 2, 6 }, { "u1", CASK_I64, 1, 5 },
        { "u4", CASK_I64, 1, 7 }, { "b1", CASK_BOOL, 2, 4 }, { "f8_0d", CASK_F64, 0, 0 },
        { "f8_empty", CASK_F64, 2, 0 },
    };
    cask_error_t err;
    char path[128], npy[128], name[32];
    snprintf(path, sizeof path, "%s/in.h5", dir);
    int cases = 0;
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++) {
        cask_graph_t *g = cask_graph_new(&err);
        snprintf(name, sizeof name, "/grp/%s", sets[i].name);
        snprintf(npy, sizeof npy, "%s/%s.npy", dir, sets[i].name);
        cask_array_t *ref = cask_array_load_npy(g, npy, NULL, &err);
        assert_non_null(ref);
        void *want = compute_all(ref, "sync", NULL);
        size_t nb = cask_array_size(ref) * cask_dtype_size(sets[i].dt);
        for (int k = 0; k < 4; k++) {
            int64_t c[3] = { 1 + k, 2 + k, 1 + k };
            cask_array_t *a = cask_array_open_hdf5(g, path, name, k ? c : NULL, &err);
            assert_non_null(a);
            assert_int_equal(cask_array_dtype(a), sets[i].dt);
            assert_int_equal(cask_array_ndim(a), sets[i].ndim);
            if (!k && sets[i].ndim && sets[i].chunk0) /* the dataset's own chunks */
                assert_int_equal(cask_array_chunks(a)[0], sets[i].chunk0);
            void *got = compute_all(a, test_scheds[(i + (size_t)k) % N_TEST_SCHEDS], NULL);
            if (memcmp(got, want, nb))
                fail_msg("%s, chunks %d: differs from NumPy's", sets[i].name, k);
            free(got);
            cask_array_decref(a);
            cases++;
        }
        free(want);
        cask_array_decref(ref);
        cask_graph_decref(g);
    }
    printf("# %d dataset readings equal to NumPy's\n", cases);
}

/* What cask cannot read is refused when opened, naming it. */
static void test_open_hdf5_refuses(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    char in[128], junk[128];
    snprintf(in, sizeof in, "%s/in.h5", dir);
    snprintf(junk, sizeof junk, "%s/junk.h5", dir);
    static const struct { const char *file, *name; int code; const char *says; } bad[] = {
        { "in", "s", CASK_ETYPE, "holds strings" },
        { "in", "u8", CASK_ETYPE, "unsigned 64-bit" },
        { "in", "c", CASK_ETYPE, "compound values" },
        { "in", "/grp/none", CASK_EIO, "has no dataset '/grp/none'" },
        { "in", "grp", CASK_EIO, "has no dataset 'grp'" },
        { "junk", "x", CASK_EIO, "is not an HDF5 file" },
        { "missing", "x", CASK_EIO, "No such file" },
        { "dir", "x", CASK_EIO, "not a regular file" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *p = !strcmp(bad[i].file, "in") ? in : !strcmp(bad[i].file, "junk") ? junk
                      : !strcmp(bad[i].file, "dir") ? dir : "/nonexistent/x.h5";
        assert_null(cask_array_open_hdf5(g, p, bad[i].name, NULL, &err));
        if (err.code != bad[i].code || !strstr(err.message, bad[i].says))
            fail_msg("%s:%s: got %s '%s'", bad[i].file, bad[i].name, cask_err_name(err.code),
                     err.message);
    }
    assert_null(cask_array_open_hdf5(g, in, NULL, NULL, &err));
    assert_int_equal(err.code, CASK_EINVAL);
    int64_t zero[2] = { 0, 1 };
    assert_null(cask_array_open_hdf5(g, in, "/grp/f8", zero, &err));
    assert_int_equal(err.code, CASK_EINVAL);
    cask_graph_decref(g);
}

/* A compute reads only the blocks it needs; a dataset that changed after
** opening fails the read, naming it. */
static void test_hdf5_reads_what_is_needed(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    char path[128], cmd[512];
    snprintf(path, sizeof path, "%s/in.h5", dir);
    cask_array_t *a = cask_array_open_hdf5(g, path, "/grp/f8", NULL, &err); /* 5 x 3 blocks */
    assert_non_null(a);
    cask_slice_t s[2] = { { 6, 9, 1 }, { 4, 5, 1 } }; /* inside block (1, 1) */
    cask_array_t *one = cask_array_slice(a, s, 2, &err);
    for (size_t k = 0; k < N_TEST_SCHEDS; k++) {
        cask_compute_info_t info;
        free(compute_all(one, test_scheds[k], &info));
        size_t reads = 0;
        for (size_t i = 0; i < cask_trace_size(info.trace); i++)
            reads += !strncmp(cask_trace_event(info.trace, i)->key, "hdf5-", 5);
        assert_int_equal(reads, 1);
        cask_trace_free(info.trace);
    }
    /* the dataset replaced by one of other extents */
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"\n"
             "import h5py, numpy as np, sys\n"
             "with h5py.File(sys.argv[1], 'a') as f:\n"
             "    f.create_dataset('moving', data=np.ones((4, 4)))\n"
             "\" %s", path);
    assert_int_equal(system(cmd), 0);
    cask_array_t *m = cask_array_open_hdf5(g, path, "moving", NULL, &err);
    assert_non_null(m);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"\n"
             "import h5py, numpy as np, sys\n"
             "with h5py.File(sys.argv[1], 'a') as f:\n"
             "    del f['moving']\n"
             "    f.create_dataset('moving', data=np.ones((4, 5)))\n"
             "\" %s", path);
    assert_int_equal(system(cmd), 0);
    for (size_t k = 0; k < N_TEST_SCHEDS; k++) {
        void *buf = malloc(16 * sizeof(double));
        cask_compute_opts_t o = { .scheduler = test_scheds[k], .workers = 2 };
        assert_int_equal(cask_array_compute(&m, 1, &o, &buf, NULL, &err), CASK_EKERNEL);
        assert_non_null(strstr(err.message, "'moving' changed while the array was open"));
        free(buf);
    }
    cask_array_decref(m);
    cask_array_decref(one);
    cask_array_decref(a);
    cask_graph_decref(g);
}

/* A box HDF5 would only copy (no filters, the stored type, no user block,
** in one piece or inside one chunk) is read with pread past HDF5; any other
** goes through H5Dread; each gives NumPy's values, on every scheduler. A
** file cut short is a clean error naming it. */
static void test_hdf5_direct_reads(void **state)
{
    (void)state;
    static const struct { const char *file, *name, *npy; int64_t c0, c1; int direct; } cases[] = {
        { "in", "/grp/f8", "f8", 0, 0, 30 },   /* its own chunks (5, 3): 5 x 6 boxes, edges too */
        { "in", "/grp/f8", "f8", 4, 3, 18 },   /* rows 4 at a time: 3 of 6 rows of boxes inside one */
        { "in", "/grp/f8", "f8", 5, 6, 0 },    /* 6 columns: across two chunks each */
        { "in", "/grp/f4", "f4", 3, 0, 4 },    /* in one piece, the stored type */
        { "in", "/grp/i2", "i2", 0, 0, 0 },    /* int16, read as int64: converted by HDF5 */
        { "in", "/gz", "gz", 0, 0, 0 },       /* deflated */
        { "in", "/be", "gz", 0, 0, 0 },       /* big-endian, read as native */
        { "in", "/sparse", "sparse", 0, 0, 1 }, /* one chunk written, three fill values */
        { "ub", "x", "f8", 0, 0, 0 },          /* a user block before HDF5's data */
    };
    cask_error_t err;
    char path[128], npy[128];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cask_graph_t *g = cask_graph_new(&err);
        snprintf(path, sizeof path, "%s/%s.h5", dir, cases[i].file);
        snprintf(npy, sizeof npy, "%s/%s.npy", dir, cases[i].npy);
        cask_array_t *ref = cask_array_load_npy(g, npy, NULL, &err);
        assert_non_null(ref);
        void *want = compute_all(ref, "sync", NULL);
        size_t nb = cask_array_size(ref) * cask_dtype_size(cask_array_dtype(ref));
        int64_t c[2] = { cases[i].c0, cases[i].c1 };
        for (size_t k = 0; k < N_TEST_SCHEDS; k++) {
            cask_array_t *a = cask_array_open_hdf5(g, path, cases[i].name, c[0] ? c : NULL, &err);
            if (!a)
                fail_msg("%s %s: %s", cases[i].file, cases[i].name, err.message);
            size_t before = atomic_load(&cask__ar_h5_direct_reads);
            void *got = compute_all(a, test_scheds[k], NULL);
            size_t direct = atomic_load(&cask__ar_h5_direct_reads) - before;
            if (memcmp(got, want, nb))
                fail_msg("%s %s, case %zu on %s: differs from NumPy's", cases[i].file,
                         cases[i].name, i, test_scheds[k]);
            if (strcmp(test_scheds[k], "processes") && direct != (size_t)cases[i].direct)
                fail_msg("%s %s, case %zu on %s: %zu of %zu boxes read past HDF5, not %d",
                         cases[i].file, cases[i].name, i, test_scheds[k], direct,
                         cask_array_nblocks(a), cases[i].direct);
            free(got);
            cask_array_decref(a);
        }
        free(want);
        cask_array_decref(ref);
        cask_graph_decref(g);
    }
    /* a reduction streams its boxes a window at a time (lowered to one row
    ** of a chunk) past HDF5, from the chunk's origin or inside it, or reads
    ** them through HDF5 (gzip): the column sums of a plain loop over
    ** NumPy's copy */
    size_t saved = cask__ar_window;
    cask__ar_window = 24;
    for (int gz = 0; gz < 3; gz++) {
        cask_graph_t *g = cask_graph_new(&err);
        snprintf(path, sizeof path, "%s/in.h5", dir);
        snprintf(npy, sizeof npy, "%s/%s.npy", dir, gz == 1 ? "gz" : "f8");
        cask_array_t *ref = cask_array_load_npy(g, npy, NULL, &err);
        double *want = compute_all(ref, "sync", NULL);
        int64_t rows = cask_array_shape(ref)[0], cols = cask_array_shape(ref)[1];
        cask_array_t *a = cask_array_open_hdf5(g, path, gz == 1 ? "/gz" : "/grp/f8",
                                               gz == 2 ? (int64_t[]){ 4, 3 } : NULL, &err);
        cask_array_t *s = cask_array_reduce(a, CASK_SUM, &(cask_reduce_opts_t){ .axes = CASK_AXIS(0) },
                                            &err);
        assert_non_null(s);
        for (size_t k = 0; k < N_TEST_SCHEDS; k++) {
            size_t before = atomic_load(&cask__ar_streams);
            double *got = compute_all(s, test_scheds[k], NULL);
            for (int64_t c = 0; c < cols; c++) {
                double sum = 0;
                for (int64_t r = 0; r < rows; r++)
                    sum += want[r * cols + c];
                if (fabs(got[c] - sum) > 1e-12 * (1 + fabs(sum)))
                    fail_msg("case %d: column %lld sums to %.17g, not %.17g", gz,
                             (long long)c, got[c], sum);
            }
            free(got);
            if (strcmp(test_scheds[k], "processes"))
                assert_true((atomic_load(&cask__ar_streams) > before) == (gz != 1));
        }
        free(want);
        cask_array_decref(s);
        cask_array_decref(a);
        cask_array_decref(ref);
        cask_graph_decref(g);
    }
    cask__ar_window = saved;
    /* a read past HDF5 that finds the file's end (the first one, injected;
    ** HDF5's own reads do not count) fails the task naming the file */
    {
        cask_graph_t *g = cask_graph_new(&err);
        snprintf(path, sizeof path, "%s/in.h5", dir);
        cask_array_t *a = cask_array_open_hdf5(g, path, "/grp/f8", NULL, &err);
        for (size_t k = 0; k < 2; k++) {
            void *buf = malloc(23 * 17 * sizeof(double));
            cask_compute_opts_t o = { .scheduler = test_scheds[k], .workers = 2 };
            cask__ar_read_end_at(1);
            int rc = cask_array_compute(&a, 1, &o, &buf, NULL, &err);
            cask__ar_read_end_at(0);
            assert_int_equal(rc, CASK_EKERNEL);
            assert_non_null(strstr(err.message, "in.h5: the file ends at byte"));
            free(buf);
        }
        cask_array_decref(a);
        cask_graph_decref(g);
    }
    /* a bool byte of 7 fails the task that reads it, read past HDF5 (its
    ** chunks, in windows of a row) or by HDF5 (across its chunks, into a
    ** region of the task's), as the box or into a sum */
    {
        cask_graph_t *g = cask_graph_new(&err);
        snprintf(path, sizeof path, "%s/in.h5", dir);
        size_t saved_window = cask__ar_window;
        cask__ar_window = 2;
        for (int across = 0; across < 2; across++) {
            cask_array_t *a = cask_array_open_hdf5(g, path, "b1bad",
                                                   across ? (int64_t[]){ 5, 3 } : NULL, &err);
            cask_array_t *s = cask_array_reduce(a, CASK_SUM,
                                                &(cask_reduce_opts_t){ .axes = CASK_AXIS(0) }, &err);
            assert_non_null(s);
            for (size_t k = 0; k < 2; k++)
                for (int sum = 0; sum < 2; sum++) {
                    int64_t buf[33];
                    cask_compute_opts_t o = { .scheduler = test_scheds[k], .workers = 2 };
                    assert_int_equal(cask_array_compute(sum ? &s : &a, 1, &o, (void *[]){ buf },
                                                        NULL, &err), CASK_EKERNEL);
                    assert_non_null(strstr(err.message, "dataset 'b1bad' has a bool of value 7"));
                }
            cask_array_decref(s);
            cask_array_decref(a);
        }
        cask__ar_window = saved_window;
        cask_graph_decref(g);
    }
    /* a copy of the file cut short after the array was opened: HDF5's own
    ** check (its end of file is short of where its data ends) */
    char cmd[512];
    snprintf(path, sizeof path, "%s/cut.h5", dir);
    snprintf(cmd, sizeof cmd, "cp %s/in.h5 %s", dir, path);
    assert_int_equal(system(cmd), 0);
    cask_graph_t *g = cask_graph_new(&err);
    cask_array_t *a = cask_array_open_hdf5(g, path, "/grp/f8", NULL, &err);
    assert_non_null(a);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);
    for (size_t k = 0; k < N_TEST_SCHEDS; k++) {
        void *buf = malloc(23 * 17 * sizeof(double));
        cask_compute_opts_t o = { .scheduler = test_scheds[k], .workers = 2 };
        assert_int_equal(cask_array_compute(&a, 1, &o, &buf, NULL, &err), CASK_EKERNEL);
        assert_non_null(strstr(err.message, path));
        free(buf);
    }
    cask_array_decref(a);
    cask_graph_decref(g);
}

/* Stores of every dtype, ragged blocks, 1-d and 0-d, on every scheduler,
** read back by h5py equal to what cask computed, chunked as the array;
** a second store replaces the dataset; a store into the file the array
** reads is refused. */
static void test_save_hdf5_round_trip(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    static const char *const tags[] = { "f8", "f4", "i8", "b1", "f8_1d", "f8_0d" };
    const cask_dtype_t dts[] = { CASK_F64, CASK_F32, CASK_I64, CASK_BOOL, CASK_F64, CASK_F64 };
    const int nds[] = { 2, 2, 2, 2, 1, 0 };
    int64_t shape[2] = { 7, 5 }, chunks[2] = { 3, 2 };
    char out[128], raw[128], cmd[2048];
    snprintf(out, sizeof out, "%s/out.h5", dir);
    for (int k = 0; k < 6; k++) {
        int64_t n = 1;
        for (int x = 0; x < nds[k]; x++)
            n *= shape[x];
        size_t es = cask_dtype_size(dts[k]);
        unsigned char *data = malloc((size_t)n * es);
        for (int64_t i = 0; i < n; i++) {
            double v = (double)((i * 7919) % 101) - 50.5;
            if (dts[k] == CASK_F64)
                ((double *)data)[i] = v * 1e-3;
            else if (dts[k] == CASK_F32)
                ((float *)data)[i] = (float)v;
            else if (dts[k] == CASK_I64)
                ((int64_t *)data)[i] = (int64_t)(v * 1e15);
            else
                data[i] = v > 0;
        }
        cask_array_t *a = cask_array_from_buffer(g, dts[k], nds[k], shape, chunks, data,
                                                 CASK_ARRAY_COPY, &err);
        assert_non_null(a);
        char name[32];
        snprintf(name, sizeof name, "/deep/er/%s", tags[k]);
        cask_compute_opts_t o = { .scheduler = test_scheds[(size_t)k % N_TEST_SCHEDS], .workers = 2 };
        if (k == 0) /* stored twice: the second replaces the first */
            assert_ok(cask_array_save_hdf5(a, out, name, &o, &err), &err);
        assert_ok(cask_array_save_hdf5(a, out, name, &o, &err), &err);
        snprintf(raw, sizeof raw, "%s/raw_%s.bin", dir, tags[k]);
        FILE *f = fopen(raw, "wb");
        assert_true(fwrite(data, es, (size_t)n, f) == (size_t)n);
        fclose(f);
        free(data);
        cask_array_decref(a);
    }
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"\n"
             "import h5py, numpy as np, sys\n"
             "d = sys.argv[1]\n"
             "with h5py.File(d + '/out.h5') as f:\n"
             "    assert sorted(f['deep/er'].keys()) == sorted(['f8', 'f4', 'i8', 'b1', 'f8_1d', 'f8_0d']), list(f['deep/er'].keys())\n"
             "    for t, dt, sh, ch in [('f8', 'f8', (7, 5), (3, 2)), ('f4', 'f4', (7, 5), (3, 2)),\n"
             "                          ('i8', 'i8', (7, 5), (3, 2)), ('b1', '?', (7, 5), (3, 2)),\n"
             "                          ('f8_1d', 'f8', (7,), (3,)), ('f8_0d', 'f8', (), None)]:\n"
             "        a = f['deep/er/' + t]\n"
             "        raw = np.fromfile(d + '/raw_' + t + '.bin', dtype=dt, count=int(np.prod(sh))).reshape(sh)\n"
             "        assert a.dtype == raw.dtype and a.shape == sh and a.chunks == ch, (t, a.dtype, a.chunks)\n"
             "        assert np.array_equal(a[()], raw), t\n"
             "\" %s", dir);
    assert_int_equal(system(cmd), 0);
    cask_array_t *back = cask_array_open_hdf5(g, out, "/deep/er/f8", NULL, &err);
    assert_non_null(back);
    assert_int_equal(cask_array_save_hdf5(back, out, "copy", NULL, &err), CASK_EINVAL);
    assert_non_null(strstr(err.message, "while the array reads from it"));
    assert_int_equal(cask_array_save_hdf5(NULL, out, "x", NULL, &err), CASK_EINVAL);
    assert_int_equal(cask_array_save_hdf5(back, out, "", NULL, &err), CASK_EINVAL);
    cask_array_decref(back);
    cask_graph_decref(g);
}

/* A store whose compute fails leaves no dataset that looks complete: a
** file it created is removed; in a file that was there, the other
** datasets and an old dataset of that name are as they were, and no
** temporary dataset remains. */
static void test_save_hdf5_fails_cleanly(void **state)
{
    (void)state;
    cask_error_t err;
    char npy[128], fresh[128], old[128], cmd[1024];
    snprintf(npy, sizeof npy, "%s/cut.npy", dir);
    snprintf(fresh, sizeof fresh, "%s/fresh.h5", dir);
    snprintf(old, sizeof old, "%s/old.h5", dir);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"\n"
             "import h5py, numpy as np, sys\n"
             "d = sys.argv[1]\n"
             "np.save(d + '/cut.npy', np.arange(400.0).reshape(20, 20))\n"
             "with h5py.File(d + '/old.h5', 'w') as f:\n"
             "    f['keep'] = np.arange(3)\n"
             "    f['y'] = np.full(2, 9.0)\n"
             "\" %s", dir);
    assert_int_equal(system(cmd), 0);
    for (size_t k = 0; k < N_TEST_SCHEDS; k++) {
        cask_graph_t *g = cask_graph_new(&err);
        int64_t c[2] = { 5, 5 };
        cask_array_t *a = cask_array_open_npy(g, npy, c, &err);
        assert_non_null(a);
        assert_int_equal(truncate(npy, 128 + 8 * 300), 0); /* the last blocks are gone */
        cask_compute_opts_t o = { .scheduler = test_scheds[k], .workers = 2 };
        assert_int_equal(cask_array_save_hdf5(a, fresh, "y", &o, &err), CASK_EKERNEL);
        struct stat st;
        assert_int_not_equal(stat(fresh, &st), 0); /* created, then removed */
        assert_int_equal(cask_array_save_hdf5(a, old, "y", &o, &err), CASK_EKERNEL);
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 -c \"\n"
                 "import h5py, numpy as np, sys\n"
                 "with h5py.File(sys.argv[1]) as f:\n"
                 "    assert sorted(f.keys()) == ['keep', 'y'], list(f.keys())\n"
                 "    assert np.array_equal(f['keep'][()], np.arange(3))\n"
                 "    assert np.array_equal(f['y'][()], np.full(2, 9.0))\n"
                 "np.save(sys.argv[2], np.arange(400.0).reshape(20, 20))\n"
                 "\" %s %s", old, npy);
        assert_int_equal(system(cmd), 0);
        cask_array_decref(a);
        cask_graph_decref(g);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_hdf5_vs_numpy),
        cmocka_unit_test(test_open_hdf5_refuses),
        cmocka_unit_test(test_hdf5_reads_what_is_needed),
        cmocka_unit_test(test_hdf5_direct_reads),
        cmocka_unit_test(test_save_hdf5_round_trip),
        cmocka_unit_test(test_save_hdf5_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
