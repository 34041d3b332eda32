#!/usr/bin/env bash
# format.t - every C file follows .clang-format (docs/style.md).
# Skips where clang-format is not installed (it is not a build dependency).
set -u
. "$(dirname "$0")/taplib.sh"
command -v clang-format >/dev/null 2>&1 || skip_all "clang-format not installed"
files=$(ls src/*/*.c src/*/*.h include/*.h test/*.c test/*.h test/fuzz/*.c)
plan "$(echo "$files" | wc -l)"
for f in $files; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1
    ok $? "$f is clang-formatted"
done
