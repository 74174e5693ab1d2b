/*
** bench/tbb_bench.cpp: the same three shapes as cask_bench (wide, chain,
** tree) as oneTBB flow graphs (Debian's libtbb-dev) on 2 threads, each node
** one addition, as cask's cask.add tasks are.
**
**   tbb_bench SHAPE   prints SHAPE.threads.tbb.tasks_per_s
**
** The graph is built first and not timed (as cask's figures do not time
** building the graph); the figure is the median of 7 runs of try_put and
** wait_for_all on a graph built anew for each run.
*/
#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/global_control.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

using namespace oneapi::tbb;
using node_t = flow::continue_node<flow::continue_msg>;

static volatile int64_t sink; /* keeps the results alive */

/* A shape built in g: its start node, its task count, and where the result lands. */
struct shape {
    std::vector<std::unique_ptr<node_t>> nodes;
    std::unique_ptr<flow::broadcast_node<flow::continue_msg>> start;
    std::vector<int64_t> a;
    size_t tasks = 0;
};

static void build_wide(flow::graph &g, shape &s, size_t n)
{
    s.a.assign(n + 1, 0);
    int64_t *a = s.a.data();
    for (size_t i = 0; i < n; i++) {
        s.nodes.emplace_back(new node_t(g, [a, i](const flow::continue_msg &) {
            a[i] = (int64_t)i + 1;
        }));
        flow::make_edge(*s.start, *s.nodes.back());
    }
    node_t *sum = new node_t(g, [a, n](const flow::continue_msg &) {
        int64_t t = 0;
        for (size_t i = 0; i < n; i++)
            t += a[i];
        a[n] = t;
    });
    for (size_t i = 0; i < n; i++)
        flow::make_edge(*s.nodes[i], *sum);
    s.nodes.emplace_back(sum);
    s.tasks = n + 1;
}

static void build_chain(flow::graph &g, shape &s, size_t n)
{
    s.a.assign(1, 0);
    int64_t *x = s.a.data();
    node_t *prev = nullptr;
    for (size_t i = 0; i < n; i++) {
        s.nodes.emplace_back(new node_t(g, [x](const flow::continue_msg &) { *x += 1; }));
        if (prev)
            flow::make_edge(*prev, *s.nodes.back());
        else
            flow::make_edge(*s.start, *s.nodes.back());
        prev = s.nodes.back().get();
    }
    s.tasks = n;
}

static void build_tree(flow::graph &g, shape &s, size_t leaves)
{
    s.a.assign(2 * leaves, 0);
    int64_t *a = s.a.data();
    std::vector<node_t *> level;
    size_t slot = 0;
    for (size_t i = 0; i < leaves; i++, slot++) {
        s.nodes.emplace_back(new node_t(g, [a, slot, i](const flow::continue_msg &) {
            a[slot] = (int64_t)i;
        }));
        flow::make_edge(*s.start, *s.nodes.back());
        level.push_back(s.nodes.back().get());
    }
    std::vector<size_t> where(leaves);
    for (size_t i = 0; i < leaves; i++)
        where[i] = i;
    while (level.size() > 1) {
        std::vector<node_t *> up;
        std::vector<size_t> up_where;
        for (size_t i = 0; i + 1 < level.size(); i += 2, slot++) {
            size_t l = where[i], r = where[i + 1], me = slot;
            s.nodes.emplace_back(new node_t(g, [a, l, r, me](const flow::continue_msg &) {
                a[me] = a[l] + a[r];
            }));
            flow::make_edge(*level[i], *s.nodes.back());
            flow::make_edge(*level[i + 1], *s.nodes.back());
            up.push_back(s.nodes.back().get());
            up_where.push_back(me);
        }
        level.swap(up);
        where.swap(up_where);
    }
    s.tasks = s.nodes.size();
}

int main(int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "wide") && strcmp(argv[1], "chain") &&
                      strcmp(argv[1], "tree"))) {
        std::fprintf(stderr, "usage: tbb_bench wide|chain|tree\n");
        return 2;
    }
    global_control threads(global_control::max_allowed_parallelism, 2);
    enum { REPS = 7 };
    double t[REPS];
    size_t tasks = 0;
    for (int r = 0; r < REPS; r++) {
        flow::graph g;
        shape s;
        s.start.reset(new flow::broadcast_node<flow::continue_msg>(g));
        if (!strcmp(argv[1], "wide"))
            build_wide(g, s, 100000);
        else if (!strcmp(argv[1], "chain"))
            build_chain(g, s, 100000);
        else
            build_tree(g, s, 65536);
        auto t0 = std::chrono::steady_clock::now();
        s.start->try_put(flow::continue_msg());
        g.wait_for_all();
        t[r] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        sink = s.a.back();
        tasks = s.tasks;
    }
    std::sort(t, t + REPS);
    std::printf("%s.threads.tbb.tasks_per_s %.0f\n", argv[1], (double)tasks / t[REPS / 2]);
    return 0;
}
