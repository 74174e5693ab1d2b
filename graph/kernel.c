/*
** graph/kernel.c: the registry of kernels by name.
**
** Kernels live for the process's life in a fixed table, so an id handed out
** once stays valid and can be read without a lock; names are found through
** a small open-addressing index guarded by a mutex (registration is rare,
** and graphs cache the last name they looked up). A record is never
** changed once published: registering a name again with new options
** publishes a new record in its slot, which keeps the old one (a compute
** running meanwhile may still read it), so readers need no lock.
*/
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "graph.h"

#define MAX_KERNELS CASK__MAX_KERNELS
#define INDEX_SLOTS 8192 /* a power of two, twice MAX_KERNELS */

static _Atomic(cask__kernel_t *) kernels[MAX_KERNELS];
static uint32_t n_kernels;              /* guarded by lock */
static _Atomic uint32_t generation;     /* registrations and replacements so far */
static uint32_t name_index[INDEX_SLOTS]; /* id + 1, 0 empty; guarded by lock */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* Slot of name in the index: where it is, or the empty slot it would take. */
static uint32_t *index_slot(const char *name)
{
    uint64_t h = cask__hash(name, strlen(name), 0);
    for (uint32_t i = (uint32_t)h & (INDEX_SLOTS - 1);; i = (i + 1) & (INDEX_SLOTS - 1)) {
        uint32_t id = name_index[i];
        if (!id || strcmp(atomic_load_explicit(&kernels[id - 1], memory_order_relaxed)->name,
                          name) == 0)
            return &name_index[i];
    }
}

/* Give k the options opts, its version copied into the record. */
static void set_opts(cask__kernel_t *k, const cask_kernel_opts_t *opts)
{
    k->opts = *opts;
    snprintf(k->version, sizeof k->version, "%s", opts->version ? opts->version : "");
    k->opts.version = k->version;
}

/* Register without the check for reserved names (the built-ins use it). */
int cask__kernel_register(const char *name, cask_kernel_fn fn,
                          const cask_kernel_opts_t *opts, cask_error_t *err)
{
    static const cask_kernel_opts_t none;
    size_t len = name ? strlen(name) : 0;
    if (!fn)
        return cask__err(err, CASK_EINVAL, NULL, name, "kernel function is NULL");
    if (len == 0 || len > 63)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "kernel name must have 1 to 63 bytes, not %zu", len);
    if (!opts)
        opts = &none;
    if (opts->cost < 0 || opts->cost != opts->cost)
        return cask__err(err, CASK_EINVAL, NULL, name, "kernel cost %g is not >= 0", opts->cost);
    if (opts->version && strlen(opts->version) > 63)
        return cask__err(err, CASK_EINVAL, NULL, name, "kernel version has %zu bytes, over 63",
                         strlen(opts->version));
    pthread_mutex_lock(&lock);
    int rc = 0;
    uint32_t *slot = index_slot(name);
    if (*slot) {
        cask__kernel_t *k = atomic_load_explicit(&kernels[*slot - 1], memory_order_relaxed);
        if (k->fn != fn) {
            rc = cask__err(err, CASK_EDUPKEY, NULL, name,
                           "kernel '%s' is already registered with another function", name);
        } else if (k->opts.flags != opts->flags || k->opts.cost != opts->cost ||
                   k->opts.cost_fn != opts->cost_fn || k->opts.udata != opts->udata ||
                   strcmp(k->version, opts->version ? opts->version : "")) {
            /* same kernel, new options */
            cask__kernel_t *nk = cask__malloc(sizeof *nk);
            if (!nk) {
                rc = cask__err(err, CASK_ENOMEM, NULL, name, "no memory to register a kernel");
                goto out;
            }
            *nk = *k;
            set_opts(nk, opts);
            nk->prev = k;
            atomic_store_explicit(&kernels[*slot - 1], nk, memory_order_release);
            atomic_fetch_add(&generation, 1);
        }
        goto out;
    }
    if (n_kernels == MAX_KERNELS) {
        rc = cask__err(err, CASK_ELIMIT, NULL, name, "more than %d kernels", MAX_KERNELS);
        goto out;
    }
    cask__kernel_t *k = cask__calloc(1, sizeof *k);
    if (!k) {
        rc = cask__err(err, CASK_ENOMEM, NULL, name, "no memory to register a kernel");
        goto out;
    }
    memcpy(k->name, name, len + 1);
    k->fn = fn;
    set_opts(k, opts);
    const char *dot = strrchr(name, '.');
    k->short_at = dot && dot[1] ? (uint32_t)(dot + 1 - name) : 0;
    k->name_hash = cask__hash(name, len, 0x6361736bull);
    k->short_hash = cask__hash(name + k->short_at, len - k->short_at, 0x6e616d65ull);
    atomic_store_explicit(&kernels[n_kernels], k, memory_order_release);
    *slot = ++n_kernels;
    atomic_fetch_add(&generation, 1);
out:
    pthread_mutex_unlock(&lock);
    return rc;
}

int cask_kernel_register(const char *name, cask_kernel_fn fn,
                         const cask_kernel_opts_t *opts, cask_error_t *err)
{
    if (name && strncmp(name, "cask.", 5) == 0)
        return cask__err(err, CASK_EINVAL, NULL, name,
                         "kernel names starting with 'cask.' are reserved");
    return cask__kernel_register(name, fn, opts, err);
}

void cask__kernel_set_stamp(const char *name,
                            int (*stamp)(const cask_value_t *args, size_t n, uint64_t h[2]))
{
    pthread_mutex_lock(&lock);
    uint32_t id = *index_slot(name);
    if (id)
        atomic_load_explicit(&kernels[id - 1], memory_order_relaxed)->stamp = stamp;
    pthread_mutex_unlock(&lock);
}

uint32_t cask__kernel_lookup(const char *name)
{
    if (!name)
        return CASK__NO_KERNEL;
    pthread_mutex_lock(&lock);
    uint32_t id = *index_slot(name);
    pthread_mutex_unlock(&lock);
    return id ? id - 1 : CASK__NO_KERNEL;
}

bool cask_kernel_exists(const char *name)
{
    return cask__kernel_lookup(name) != CASK__NO_KERNEL;
}

uint32_t cask__kernel_generation(void)
{
    return atomic_load(&generation);
}

const cask__kernel_t *cask__kernel_get(uint32_t id)
{
    return id < MAX_KERNELS ? atomic_load_explicit(&kernels[id], memory_order_acquire) : NULL;
}

double cask__kernel_cost(uint32_t id, const cask_value_t *args, size_t n)
{
    const cask__kernel_t *k = cask__kernel_get(id);
    double c = 0;
    if (k && k->opts.cost_fn)
        c = k->opts.cost_fn(args, n);
    else if (k)
        c = k->opts.cost;
    return c > 0 ? c : 1e-6;
}

/* ------------------------------------------------------ kernel context */

int cask_kernel_fail(cask_kctx_t *ctx, const char *fmt, ...)
{
    if (ctx && ctx->msg && ctx->msgcap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->msg, ctx->msgcap, fmt, ap);
        va_end(ap);
    }
    return CASK_EKERNEL;
}

void *cask_kernel_udata(const cask_kctx_t *ctx)
{
    return ctx && ctx->k ? ctx->k->opts.udata : NULL;
}

int cask_kernel_worker(const cask_kctx_t *ctx)
{
    return ctx ? ctx->worker : 0;
}

int cask__kernel_invoke(const cask__kernel_t *k, const cask_value_t *args,
                        size_t n, cask_value_t *out, int worker, char *msg,
                        size_t msgcap)
{
    cask_kctx_t ctx = { k, worker, msg, msgcap };
    *out = cask_none();
    msg[0] = '\0';
    int rc = k->fn(args, n, out, &ctx);
    if (rc) {
        cask_value_decref(out);
        if (rc > 0)
            rc = CASK_EKERNEL;
        if (!msg[0])
            snprintf(msg, msgcap, "%s", cask_strerror(rc));
    }
    return rc;
}

const cask__kernel_t *cask__kernel_named(const char *name)
{
    uint32_t id = name ? cask__kernel_lookup(name) : CASK__NO_KERNEL;
    return id == CASK__NO_KERNEL ? NULL : cask__kernel_get(id);
}

int cask__kernel_call(cask_kctx_t *ctx, const cask__kernel_t *k, const cask_value_t *args,
                      size_t n, cask_value_t *out)
{
    cask_kctx_t sub = { k, ctx ? ctx->worker : 0, ctx ? ctx->msg : NULL,
                        ctx ? ctx->msgcap : 0 };
    *out = cask_none();
    int rc = k->fn(args, n, out, &sub);
    if (rc)
        cask_value_decref(out);
    return rc > 0 ? CASK_EKERNEL : rc;
}

int cask_kernel_call(cask_kctx_t *ctx, const char *name,
                     const cask_value_t *args, size_t n_args,
                     cask_value_t *out)
{
    const cask__kernel_t *k = cask__kernel_named(name);
    *out = cask_none();
    if (!k) {
        cask_kernel_fail(ctx, "unknown kernel '%s'", name ? name : "(null)");
        return CASK_ENOKERNEL;
    }
    return cask__kernel_call(ctx, k, args, n_args, out);
}

int cask__kernel_stamp_named(const char *name, uint64_t h[2])
{
    const cask__kernel_t *k = cask__kernel_named(name);
    if (!k || (k->opts.flags & CASK_KERNEL_IMPURE))
        return -1;
    cask__hash2(k->version, strlen(k->version) + 1, h);
    return 0;
}
