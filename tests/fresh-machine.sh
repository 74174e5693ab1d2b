#!/bin/sh
# tests/fresh-machine.sh: the README's two commands on a machine without the
# packages they install, as a newcomer meets them.
#
# Removes the Debian packages `make deps` installs (apt-get remove, with the
# packages only they pulled in; the toolchain stays: build-essential,
# pkg-config, clang, binutils), clones this repository's committed HEAD into
# a temporary folder, and runs `make demo` then `make test` there. Fails if
# a package is still there after the removal, or if either command fails.
# Needs root or sudo; .ci/run runs it first.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
toolchain='build-essential|pkg-config|clang|libclang-rt-14-dev|binutils'
if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

pkgs=""
for p in $(make -s -C "$repo" deps-list); do
    echo "$p" | grep -qxE "$toolchain" && continue
    installed "$p" && pkgs="$pkgs $p"
done
if [ -n "$pkgs" ]; then
    echo "fresh-machine: removing$pkgs"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get remove -y -qq --autoremove $pkgs >/dev/null
fi
for p in $(make -s -C "$repo" deps-list); do
    echo "$p" | grep -qxE "$toolchain" && continue
    if installed "$p"; then echo "fresh-machine: $p is still installed"; exit 1; fi
done
if command -v mpicc >/dev/null || command -v dot >/dev/null; then
    echo "fresh-machine: mpicc or dot is still on the PATH"; exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git clone -q "$repo" "$tmp/cask"
cd "$tmp/cask"
echo "fresh-machine: make demo in a clone of $(git rev-parse --short HEAD)"
make demo
echo "fresh-machine: make test"
make test
echo "fresh-machine: make demo then make test passed"
