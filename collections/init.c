/*
** collections/init.c: the library's start, the one place that knows every
** layer. Before main (a constructor; libcask.a is one object, so a program
** that links the library links this too) it registers the built-in kernels
** (graph/), the schedulers (sched/) and the kernels of the collections
** (arrays, bags), so a graph file naming any of them loads in any program. No
** layer calls up into another: they are all called from here.
**
** A program's own constructors run after this one (priority 101 comes
** first); a library's that runs before it must not call cask.
*/
#include "array.h"
#include "bag.h"
#include "../sched/sched.h"

__attribute__((constructor(101))) static void cask_start(void)
{
    cask__register_builtins();
    cask__register_schedulers();
    cask__cache_register();
    cask__register_collections();
    cask__bag_register();
}
