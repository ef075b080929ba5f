#!/usr/bin/env bash
# The lock annotations of base/mutex.h are checked by clang's thread-safety
# analysis: correct locking compiles, and each misuse in
# testdata/thread_safety_misuse.cc is an error naming the guarded variable.
# (CI also builds every library with clang and -Werror=thread-safety:
# tools/test.sh.)
set -euo pipefail
root="$TEST_SRCDIR/$TEST_WORKSPACE"
if ! command -v clang++ >/dev/null; then
  echo "clang++ is not installed (tools/setup.sh installs it)" >&2
  exit 1
fi
inc="$TEST_TMPDIR/include"
mkdir -p "$inc/proxystore"
ln -sfn "$root/base" "$inc/proxystore/base"
src="$root/base/testdata/thread_safety_misuse.cc"
check() {
  clang++ -std=c++20 -fsyntax-only -Wthread-safety -Werror=thread-safety \
    -I "$inc" "$@" "$src"
}
check
echo "ok: correct locking compiles"
for misuse in MISUSE_UNLOCKED_WRITE MISUSE_WRITE_UNDER_READER_LOCK; do
  if out=$(check -D"$misuse" 2>&1); then
    echo "FAIL: $misuse compiled" >&2
    exit 1
  fi
  grep -q "variable 'value' requires holding mutex 'mu'" <<<"$out" || {
    echo "FAIL: $misuse failed for another reason:" >&2
    echo "$out" >&2
    exit 1
  }
  echo "ok: $misuse is rejected"
done
