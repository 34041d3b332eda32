#!/usr/bin/env bash
# format.t - every C file follows .clang-format (docs/style.md).
# `make deps` installs clang-format on Debian (a test dependency, not a build
# one); where it cannot (a cluster without root and without the tool) the test
# skips rather than judging the code by another clang-format's rules.
set -u
. "$(dirname "$0")/taplib.sh"
command -v clang-format >/dev/null 2>&1 || skip_all "clang-format not installed"
files=$(ls src/*/*.c src/*/*.h include/*.h test/*.c test/*.h test/fuzz/*.c)
plan "$(echo "$files" | wc -l)"
for f in $files; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1
    ok $? "$f is clang-formatted"
done
