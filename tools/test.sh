#!/usr/bin/env bash
# Runs every test of proxystore-cpp: the whole suite plain, under
# AddressSanitizer+UBSan and under ThreadSanitizer (each also replays the fuzz
# corpora and runs the benchmark smoke pass), then every libFuzzer target for
# a bounded time (tools/fuzz.sh, clang), then builds and runs the downstream
# consumer example (examples/consumer). Installs what it needs first.
#
#   tools/test.sh            # everything (what CI runs)
#   tools/test.sh --quick    # plain build only
#
# PROXYSTORE_FUZZ_SECONDS (default 30) is each fuzzer's time;
# PROXYSTORE_FUZZ_SEED (default 1, fixed so that CI is reproducible; 0 =
# random) its libFuzzer seed.
#
# Exits non-zero if any test fails or any sanitizer reports.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
  esac
done

bash tools/setup.sh

# Bazel's own output stays outside the tree; keep it per user.
BAZEL=(bazel)
failed=()
passed=()

log=$(mktemp)
trap 'rm -f "$log"' EXIT
n_pass=0
n_fail=0

run() {
  local label="$1"; shift
  echo "=== $label: bazel test $* //..."
  if "${BAZEL[@]}" test --test_summary=short "$@" //... 2>&1 | tee "$log"; then
    passed+=("$label")
  else
    failed+=("$label")
  fi
  # One line per test target: "//pkg:name   PASSED in 0.1s" (or FAILED, ...).
  n_pass=$((n_pass + $(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log" || true)))
  n_fail=$((n_fail + $(grep -cE '^//[^ ]+ +(FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD|FLAKY)' "$log" || true)))
}

run plain
if [ "$quick" -eq 0 ]; then
  run asan --config=asan
  run tsan --config=tsan
  fuzz_args=(--seconds "${PROXYSTORE_FUZZ_SECONDS:-30}"
             --seed "${PROXYSTORE_FUZZ_SEED:-1}")
  echo "=== fuzzing: tools/fuzz.sh ${fuzz_args[*]}"
  if bash tools/fuzz.sh "${fuzz_args[@]}"; then
    passed+=("fuzz")
    n_pass=$((n_pass + 1))
  else
    failed+=("fuzz")
    n_fail=$((n_fail + 1))
  fi
  echo "=== consumer example (separate workspace using @proxystore//cache)"
  if (cd examples/consumer && bazel run //:main && bazel shutdown); then
    passed+=("consumer")
    n_pass=$((n_pass + 1))
  else
    failed+=("consumer")
    n_fail=$((n_fail + 1))
  fi
fi

echo
echo "configurations passed: ${passed[*]:-none}; failed: ${failed[*]:-none}"
echo "tests: $n_pass passed, $n_fail failed"
if [ ${#failed[@]} -ne 0 ] || [ "$n_fail" -ne 0 ]; then
  exit 1
fi
