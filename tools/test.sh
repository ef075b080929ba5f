#!/usr/bin/env bash
# Runs every test of proxystore-cpp: the whole suite plain, under
# AddressSanitizer+UBSan and under ThreadSanitizer (each also replays the fuzz
# corpora and runs the benchmark smoke pass), then builds every library with
# clang's thread-safety analysis as errors, runs every libFuzzer target for a
# bounded time (tools/fuzz.sh, clang), and builds and runs the downstream
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

# Build outputs are shared through a disk cache, so that a fresh checkout
# (CI's) rebuilds only what changed; test results are never taken from it:
# every test runs every time.
DISK_CACHE="${PROXYSTORE_DISK_CACHE:-$HOME/.cache/proxystore-bazel-disk}"
BAZEL=(bazel)
CACHE_FLAGS=(--disk_cache="$DISK_CACHE" --nocache_test_results)
# Python ProxyStore 1.0 for the interop tests: ../shared/python-proxystore
# next to the checkout if it is there (tests that need it skip, saying why,
# where it is not).
if [ -z "${PROXYSTORE_PYTHON_DIR:-}" ] && [ -d ../shared/python-proxystore ]; then
  PROXYSTORE_PYTHON_DIR="$(cd ../shared/python-proxystore && pwd)"
fi
if [ -n "${PROXYSTORE_PYTHON_DIR:-}" ]; then
  CACHE_FLAGS+=(--test_env=PROXYSTORE_PYTHON_DIR="$PROXYSTORE_PYTHON_DIR")
fi
failed=()
passed=()

log=$(mktemp)
trap 'rm -f "$log"' EXIT
n_pass=0
n_fail=0

timings=()
run() {
  local label="$1"; shift
  local t0=$SECONDS
  echo "=== $label: bazel test $* //..."
  if "${BAZEL[@]}" test --test_summary=short "${CACHE_FLAGS[@]}" "$@" //... 2>&1 | tee "$log"; then
    passed+=("$label")
  else
    failed+=("$label")
  fi
  timings+=("$label $((SECONDS - t0))s")
  # One line per test target: "//pkg:name   PASSED in 0.1s" (or FAILED, ...).
  n_pass=$((n_pass + $(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log" || true)))
  n_fail=$((n_fail + $(grep -cE '^//[^ ]+ +(FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD|FLAKY)' "$log" || true)))
}

echo "=== lint: tools/lint.sh (buildifier over BUILD, .bzl, WORKSPACE, MODULE.bazel)"
if bash tools/lint.sh; then
  passed+=("lint")
  n_pass=$((n_pass + 1))
else
  failed+=("lint")
  n_fail=$((n_fail + 1))
fi

run plain
if [ "$quick" -eq 0 ]; then
  run asan --config=asan
  run tsan --config=tsan
  fuzz_args=(--seconds "${PROXYSTORE_FUZZ_SECONDS:-30}"
             --seed "${PROXYSTORE_FUZZ_SEED:-1}")
  echo "=== thread-safety: clang -Werror=thread-safety over every library"
  t0=$SECONDS
  libs=$(bazel query 'kind("cc_library", //...) except attr("testonly", 1, //...) except //bench/...' 2>/dev/null)
  if CC=clang CXX=clang++ bazel \
      --output_base="${PROXYSTORE_FUZZ_OUTPUT_BASE:-$HOME/.cache/proxystore-fuzz}" \
      build --config=fuzz --symlink_prefix=/ --disk_cache="$DISK_CACHE" $libs; then
    passed+=("thread-safety")
    n_pass=$((n_pass + 1))
  else
    failed+=("thread-safety")
    n_fail=$((n_fail + 1))
  fi
  timings+=("thread-safety $((SECONDS - t0))s")
  echo "=== fuzzing: tools/fuzz.sh ${fuzz_args[*]}"
  t0=$SECONDS
  if PROXYSTORE_DISK_CACHE="$DISK_CACHE" bash tools/fuzz.sh "${fuzz_args[@]}"; then
    passed+=("fuzz")
    n_pass=$((n_pass + 1))
  else
    failed+=("fuzz")
    n_fail=$((n_fail + 1))
  fi
  timings+=("fuzz $((SECONDS - t0))s")
  echo "=== consumer example (a separate workspace using @proxystore)"
  t0=$SECONDS
  if (cd examples/consumer && bazel run --disk_cache="$DISK_CACHE" //:main && bazel shutdown); then
    passed+=("consumer")
    n_pass=$((n_pass + 1))
  else
    failed+=("consumer")
    n_fail=$((n_fail + 1))
  fi
  timings+=("consumer $((SECONDS - t0))s")
fi

echo
echo "time per phase: ${timings[*]}; total $((SECONDS))s"
echo "configurations passed: ${passed[*]:-none}; failed: ${failed[*]:-none}"
echo "tests: $n_pass passed, $n_fail failed"
if [ ${#failed[@]} -ne 0 ] || [ "$n_fail" -ne 0 ]; then
  exit 1
fi
