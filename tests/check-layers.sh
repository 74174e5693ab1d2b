#!/bin/sh
# tests/check-layers.sh: the library's layers hold. Data flows one way
# (collections -> graph -> sched -> viz), and a file may include only
# headers of its own folder or of a layer below it:
#
#   graph/        0  (util.h, graph.h; internal.h and strtab.h: graph/ only)
#   sched/        1
#   collections/  2  (collections/init.c, the library's start, sits here)
#   viz/          2
#   cli/          3
#
# Folders of one layer do not include each other. Public headers
# (include/cask/) are not a layer: anyone includes them. Prints every
# include that breaks a rule and fails if there is one.
cd "$(dirname "$0")/.." || exit 2
rank() {
    case $1 in
        graph) echo 0 ;; sched) echo 1 ;; collections|viz) echo 2 ;; cli) echo 3 ;; *) echo 9 ;;
    esac
}
bad=0
for f in graph/*.[ch] sched/*.[ch] collections/*.[ch] viz/*.[ch] cli/*.[ch]; do
    dir=${f%%/*}
    r=$(rank "$dir")
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
        case $inc in cask/*) continue ;; esac
        # the folder the header is in, from the including file's folder
        path=$(cd "$dir" && realpath -m --relative-to=.. "$inc")
        hdir=${path%%/*}
        [ "$path" = "$hdir" ] && hdir=$dir
        hr=$(rank "$hdir")
        why=""
        if [ "$hr" -gt "$r" ]; then
            why="a header of a layer above ($hdir/ over $dir/)"
        elif [ "$hr" -eq "$r" ] && [ "$hdir" != "$dir" ]; then
            why="a header of another folder of the same layer"
        elif [ "$hdir" = graph ] && [ "$dir" != graph ]; then
            case ${path#graph/} in internal.h|strtab.h) why="graph/'s own header" ;; esac
        fi
        if [ -n "$why" ]; then
            echo "$f includes $path: $why"
            bad=1
        fi
    done
done
[ "$bad" -eq 0 ] && echo "layers: every include goes down (or stays in its folder)"
exit $bad
