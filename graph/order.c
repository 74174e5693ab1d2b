/*
** graph/order.c: the static priority order every scheduler takes ready
** tasks in (p->pos: 0 runs first when it is ready).
**
** Two orders are blended. The first is memory's: the order one worker
** would run the plan in to hold few outputs at once. It walks depth first
** from the sinks (the deepest first: the one the longest path ends at;
** equal ones in index order), computing a task's inputs in the order
** they are given before the task itself, so a reduction finishes one
** block's work before it reads the next. Whenever a task that can run is
** the last consumer of some output, it goes next: the consumers that free
** memory come before any new producer, which also settles "danglers" (a
** small side consumer of a block runs with the block, not at the end).
**
** The second is time's: a task's slack is how far it could start late
** without lengthening the graph's costliest path. Tasks are sorted first by
** slack, in SLACK_CLASSES classes each 1/SLACK_CLASSES of the makespan's
** lower bound max(span, work / workers) wide, then by memory's order. A
** graph whose tasks all lie on a costliest path (a reduction, elementwise
** work over blocks) is ordered for memory alone; a task with little slack
** beside one with much (a long chain beside short work) goes first, as a
** critical-path order would run it.
**
** Cost O(tasks + edges), and O(sinks log sinks) when sinks differ in
** depth; no recursion: one explicit stack for the walk.
*/
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define SLACK_CLASSES 64
#define UNSET UINT32_MAX
#define FREES 0x80000000u /* in pend: once ready, the task frees an output */

/* One task's state in the walk, in one place: the walk visits tasks in
** an order far from their numbering, and one cache line per task beats
** four. */
typedef struct node {
    uint32_t pend;      /* input edges not yet ordered, | FREES */
    uint32_t left;      /* consumer edges not yet ordered, +1 for an output */
    uint32_t seq;       /* memory's order, UNSET until ordered */
    uint32_t cur;       /* the walk's next input edge; then the slack class */
} node_t;

typedef struct walk {
    const cask__plan_t *p;
    node_t   *nd;
    uint32_t *freer;    /* ready tasks that free an output: a stack */
    size_t    nfreer;
    uint32_t  next;     /* tasks ordered */
} walk_t;

/* Order s (ready). An input whose last consumer is now the only one left
** marks that consumer FREES, and queues it if it is ready. (A consumer
** that reads one output twice is not seen to free it: a heuristic.) */
static void order_task(walk_t *w, uint32_t s)
{
    const cask__plan_t *p = w->p;
    node_t *nd = w->nd;
    nd[s].seq = w->next++;
    for (uint32_t e = p->pred_off[s]; e < p->pred_off[s + 1]; e++) {
        uint32_t u = p->pred[e];
        if (--nd[u].left != 1)
            continue;
        for (uint32_t f = p->succ_off[u]; f < p->succ_off[u + 1]; f++) {
            uint32_t c = p->succ[f]; /* an output's consumers are all ordered */
            if (nd[c].seq == UNSET) {
                if (nd[c].pend == 0)
                    w->freer[w->nfreer++] = c;
                nd[c].pend |= FREES;
                break;
            }
        }
    }
    for (uint32_t f = p->succ_off[s]; f < p->succ_off[s + 1]; f++) {
        uint32_t c = p->succ[f];
        if (--nd[c].pend == FREES)
            w->freer[w->nfreer++] = c;
    }
}

/* Sinks by the length of the longest path ending at each (its earliest
** start plus its cost: its rank), shortest first, equal ones by index,
** highest first. */
typedef struct sink_key {
    const float *asap;
    const double *rank;
} sink_key_t;

static int sink_cmp(const void *a, const void *b, void *ctx)
{
    const sink_key_t *k = ctx;
    uint32_t u = *(const uint32_t *)a, v = *(const uint32_t *)b;
    double du = k->asap[u] + k->rank[u], dv = k->asap[v] + k->rank[v];
    if (du != dv)
        return du < dv ? -1 : 1;
    return (u < v) - (u > v);
}

int cask__plan_order(cask__plan_t *p, const double *cost, int workers)
{
    uint32_t n = p->n;
    size_t m = n ? n : 1;
    walk_t w = { .p = p };
    float *asap = cask__big_calloc(m, sizeof *asap); /* earliest starts */
    uint32_t *stack = cask__big_malloc(m * sizeof *stack);
    uint32_t *pos = p->pos ? p->pos : cask__big_malloc(m * sizeof *pos);
    uint32_t *byp = p->bypos ? p->bypos : cask__big_malloc(m * sizeof *byp);
    node_t *nd = w.nd = cask__big_malloc(m * sizeof *nd);
    w.freer = cask__big_malloc(2 * m * sizeof *w.freer);
    int rc = CASK_ENOMEM;
    if (!asap || !stack || !pos || !byp || !nd || !w.freer)
        goto out;
    p->pos = pos;
    p->bypos = byp;
    p->ordered_for = 0; /* until it is */

    /* Costs (given, or what the ranks imply), earliest starts pushed to
    ** the successors (so only the compact successor lists are read), and
    ** the makespan's lower bound. */
    double work = 0, span = 0;
    for (uint32_t v = 0; v < n; v++) {
        const uint32_t *s = p->succ + p->succ_off[v];
        uint32_t k = p->succ_off[v + 1] - p->succ_off[v];
        double best = 0;
        for (uint32_t i = 0; i < k; i++)
            best = p->rank[s[i]] > best ? p->rank[s[i]] : best;
        double c = cost ? cost[v] : p->rank[v] - best;
        float end = (float)(asap[v] + c);
        for (uint32_t i = 0; i < k; i++)
            asap[s[i]] = end > asap[s[i]] ? end : asap[s[i]];
        work += c;
        span = end > span ? end : span;
        nd[v] = (node_t){ p->npred[v], k, UNSET, p->pred_off[v] };
    }
    for (size_t i = 0; i < p->n_out; i++)
        nd[p->out[i]].left++;
    /* An output read by one task alone: that task frees it as soon as it runs.
    ** (order_task marks the others when their last consumer is the only one
    ** left.) */
    for (uint32_t v = 0; v < n; v++)
        if (nd[v].left == 1 && p->succ_off[v + 1] - p->succ_off[v] == 1) /* not asked for */
            nd[p->succ[p->succ_off[v]]].pend |= FREES;

    /* Memory's order: walk from the sinks, freers first; the deepest sink
    ** (the longest path ends there) first, then by index. A shallow sink
    ** beside the main work (a side output) is then ordered when the main
    ** walk has made its inputs, often as a freer, instead of first, which
    ** would make early everything it reads that the main work needs
    ** later. */
    size_t ns = 0;
    for (uint32_t v = n; v-- > 0;)
        if (p->succ_off[v] == p->succ_off[v + 1])
            stack[ns++] = v;
    sink_key_t sk = { asap, p->rank };
    size_t in_order = 1; /* sinks as deep as each other (many outputs of one kind): as they are */
    while (in_order < ns && sink_cmp(&stack[in_order - 1], &stack[in_order], &sk) <= 0)
        in_order++;
    if (in_order < ns)
        qsort_r(stack, ns, sizeof *stack, sink_cmp, &sk); /* the first to walk on top */
    while (w.next < n) {
        if (w.nfreer) {
            uint32_t s = w.freer[--w.nfreer];
            if (nd[s].seq == UNSET)
                order_task(&w, s);
            continue;
        }
        uint32_t v = stack[ns - 1], end = p->pred_off[v + 1], u = UNSET;
        if (nd[v].seq != UNSET) {
            ns--;
            continue;
        }
        while (nd[v].cur < end && nd[u = p->pred[nd[v].cur++]].seq != UNSET)
            u = UNSET;
        if (u != UNSET) {
            stack[ns++] = u;
        } else {
            order_task(&w, v);
            ns--;
        }
    }

    p->work = work;
    /* Time's classes, then memory's order within each: a counting sort.
    ** Slack: the latest start (span - rank) less the earliest. */
    double lb = work / (workers > 0 ? workers : 1);
    lb = lb > span ? lb : span;
    double per = lb > 0 ? SLACK_CLASSES / lb : 0;
    uint32_t base[SLACK_CLASSES + 1] = { 0 };
    for (uint32_t v = 0; v < n; v++) {
        double slack = (span - p->rank[v] - asap[v]) * per;
        uint32_t k = slack >= 1 ? (slack < SLACK_CLASSES - 1 ? (uint32_t)slack : SLACK_CLASSES - 1) : 0;
        nd[v].cur = k;
        base[k + 1]++;
        stack[nd[v].seq] = v;
    }
    for (int k = 0; k < SLACK_CLASSES; k++)
        base[k + 1] += base[k];
    for (uint32_t i = 0; i < n; i++) {
        uint32_t v = stack[i];
        pos[v] = base[nd[v].cur]++;
        byp[pos[v]] = v;
    }
    p->ordered_for = workers > 0 ? workers : 1;
    rc = 0;
out:
    cask__big_free(asap);
    cask__big_free(stack);
    cask__big_free(nd);
    cask__big_free(w.freer);
    if (rc) {
        if (pos != p->pos)
            cask__big_free(pos);
        if (byp != p->bypos)
            cask__big_free(byp);
    }
    return rc;
}
