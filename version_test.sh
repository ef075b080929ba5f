#!/usr/bin/env bash
# The version stands the same in base/version.h, MODULE.bazel and the newest
# release heading of CHANGELOG.md (docs/releasing.md).
set -euo pipefail
root="$TEST_SRCDIR/$TEST_WORKSPACE"
header=$(sed -n 's/^#define PROXYSTORE_VERSION_STRING "\(.*\)"$/\1/p' "$root/base/version.h")
parts=$(awk '/^#define PROXYSTORE_VERSION_(MAJOR|MINOR|PATCH) /{printf "%s%s", sep, $3; sep="."}' "$root/base/version.h")
module=$(tr -d '\n' <"$root/MODULE.bazel" | sed -n 's/.*module([^)]*version = "\([^"]*\)".*/\1/p')
changelog=$(sed -n 's/^## \[\([0-9][0-9.]*\)\].*/\1/p' "$root/CHANGELOG.md" | head -1)
echo "version.h: $header ($parts); MODULE.bazel: $module; CHANGELOG.md: $changelog"
[ -n "$header" ] && [ "$header" = "$parts" ] && [ "$header" = "$module" ] &&
  [ "$header" = "$changelog" ] || { echo "FAIL: versions differ" >&2; exit 1; }
