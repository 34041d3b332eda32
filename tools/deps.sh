#!/bin/sh
# deps.sh - `make deps`: install the Debian packages qid needs, only if missing.
#
# Does nothing when pkg-config already finds every library and every command
# is on PATH. Calls apt-get only as root on a system that has it (a fresh
# Debian 12); otherwise prints what is missing and how to point the Makefile
# at it, and leaves the build to fail or succeed with the user's flags.
# Set QID_NO_APT=1 to never call apt-get.
set -u
PKG_CONFIG=${PKG_CONFIG:-pkg-config}
HDF5_PC=${HDF5_PC:-hdf5-openmpi}

# pkg-config module -> Debian package
missing_pkgs=""
missing_what=""
need() { missing_pkgs="$missing_pkgs $2"; missing_what="$missing_what $1"; }

command -v "$PKG_CONFIG" >/dev/null 2>&1 || need pkg-config pkg-config
for pair in "$HDF5_PC:libhdf5-openmpi-dev" "ompi-c:libopenmpi-dev" "lapacke:liblapacke-dev" \
            "openblas:libopenblas-dev" "libcjson:libcjson-dev" "libzip:libzip-dev" \
            "libpcre2-8:libpcre2-dev" "libutf8proc:libutf8proc-dev"; do
    mod=${pair%%:*}; pkg=${pair#*:}
    "$PKG_CONFIG" --exists "$mod" 2>/dev/null || need "$mod" "$pkg"
done
# command -> Debian package
for pair in "cc:gcc" "mpirun:openmpi-bin" "h5dump:hdf5-tools" "prove:perl" "gnuplot:gnuplot-nox" \
            "git:git" "clang-format:clang-format" "ip:iproute2"; do
    cmd=${pair%%:*}; pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || need "$cmd" "$pkg"
done
[ -e /usr/include/stdio.h ] || need "C headers" libc6-dev
# Debian's h5py: the outside reader the results-store tests compare against
/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1 || need "python3-h5py" python3-h5py

if [ -z "$missing_pkgs" ]; then
    exit 0
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ "${QID_NO_APT:-0}" != 1 ]; then
    echo "make deps: installing missing Debian packages:$missing_pkgs"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || { echo "make deps: apt-get update failed" >&2; exit 1; }
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing_pkgs make ca-certificates >/dev/null ||
        { echo "make deps: apt-get install failed for:$missing_pkgs" >&2; exit 1; }
    echo "make deps: done"
    exit 0
fi

echo "make deps: not found:$missing_what" >&2
echo "make deps: not root or no apt-get, so nothing was installed; load your site's modules" >&2
echo "  (e.g. 'module load hdf5/parallel openmpi openblas') or pass HDF5_CFLAGS/HDF5_LIBS etc. to make" >&2
exit 0
