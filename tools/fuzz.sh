#!/usr/bin/env bash
# Builds the libFuzzer targets of //fuzz (fuzz_proxy, fuzz_config,
# fuzz_serializer, fuzz_multi, fuzz_npy) with clang, AddressSanitizer and UBSan, then
# runs each for a bounded time over a copy of its seed corpus (fuzz/corpus/).
#
#   tools/fuzz.sh                       # every target, 30 s each
#   tools/fuzz.sh --seconds 300 multi   # one target, longer
#   tools/fuzz.sh --keep                # keep the grown corpora and logs
#   tools/fuzz.sh --seed 1              # reproducible mutations (CI's choice)
#
# --seed 0 (the default) lets libFuzzer pick a random seed: best for finding
# new bugs. tools/test.sh (and so CI) passes a fixed seed, so a CI run
# explores the same inputs as a local run with that seed (a prefix of them,
# on a slower machine): run it locally for longer before pushing.
# The main workspace builds with gcc, so the fuzzers are built in a separate
# Bazel output base (~/.cache/proxystore-fuzz, its own server, no
# convenience symlinks) with CC=clang and --config=fuzz (.bazelrc); the main
# cache is not touched. Exits non-zero if a fuzzer crashes, times out, leaks
# or breaks an invariant, and prints where it wrote the reproducer. To
# replay one: <printed binary> <reproducer>. To keep it as a regression test,
# copy it to fuzz/corpus/<target>/regress_<name> (bazel test //fuzz/...
# replays it).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=30
seed=0
keep=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="${2:?--seconds needs a value}"; shift 2 ;;
    --seconds=*) seconds="${1#--seconds=}"; shift ;;
    --seed) seed="${2:?--seed needs a value}"; shift 2 ;;
    --seed=*) seed="${1#--seed=}"; shift ;;
    --keep) keep=1; shift ;;
    proxy|config|serializer|multi|npy) targets+=("$1"); shift ;;
    *) echo "usage: $0 [--seconds N] [--seed N] [--keep] [proxy|config|serializer|multi|npy ...]" >&2
       exit 2 ;;
  esac
done
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz: --seconds must be a positive integer" >&2
  exit 2
fi
if ! [[ "$seed" =~ ^[0-9]+$ ]]; then
  echo "fuzz: --seed must be a non-negative integer" >&2
  exit 2
fi
[ ${#targets[@]} -eq 0 ] && targets=(proxy config serializer multi npy)

bash tools/setup.sh >/dev/null

output_base="${PROXYSTORE_FUZZ_OUTPUT_BASE:-$HOME/.cache/proxystore-fuzz}"
BAZEL=(bazel "--output_base=$output_base" --max_idle_secs=600)
FLAGS=(--config=fuzz --symlink_prefix=/)
if [ -n "${PROXYSTORE_DISK_CACHE:-}" ]; then
  FLAGS+=(--disk_cache="$PROXYSTORE_DISK_CACHE")
fi
export CC=clang CXX=clang++

work=$(mktemp -d "${TMPDIR:-/tmp}/proxystore-fuzz.XXXXXX")
labels=()
for t in "${targets[@]}"; do labels+=("//fuzz:fuzz_$t"); done

start_all=$(date +%s)
echo "fuzz: building ${labels[*]} with clang (output base $output_base)"
if ! "${BAZEL[@]}" build "${FLAGS[@]}" "${labels[@]}" >"$work/build.log" 2>&1
then
  # gold prints one harmless warning per ASan check symbol; drop those.
  grep -v "Cannot export local symbol" "$work/build.log" | tail -40 >&2
  echo "fuzz: build failed (full log: $work/build.log)" >&2
  exit 1
fi
bin=$("${BAZEL[@]}" info "${FLAGS[@]}" bazel-bin 2>/dev/null)
echo "fuzz: built in $(($(date +%s) - start_all)) s; running each target for ${seconds} s"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=()
summary=()
for t in "${targets[@]}"; do
  dir="$work/$t"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp fuzz/corpus/"$t"/* "$dir/corpus/"
  seeds=$(find "$dir/corpus" -type f | wc -l)
  args=(-max_total_time="$seconds" -seed="$seed" -rss_limit_mb=2048 -timeout=10
        -print_final_stats=1 -artifact_prefix="$dir/artifacts/")
  [ -f "fuzz/$t.dict" ] && args+=(-dict="$PWD/fuzz/$t.dict")
  echo "=== fuzz_$t: ${seconds} s over $seeds seeds"
  t0=$(date +%s)
  rc=0
  (cd "$dir" && "$bin/fuzz/fuzz_$t" "${args[@]}" corpus) >"$dir/log" 2>&1 \
    || rc=$?
  elapsed=$(($(date +%s) - t0))
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$dir/log" | tail -1 || true)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log")
  new=$(sed -n 's/^stat::new_units_added: *//p' "$dir/log")
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$dir/log")
  echo "${done_line:-(no DONE line)}"
  line="fuzz_$t: ${runs:-?} runs in ${elapsed} s (${rate:-?}/s), ${new:-?} new units, peak RSS ${rss:-?} MB"
  [ -n "$done_line" ] && line="$line, $(echo "$done_line" | grep -oE "cov: [0-9]+ ft: [0-9]+")"
  artifacts=$(find "$dir/artifacts" -type f)
  if [ "$rc" -ne 0 ] || [ -n "$artifacts" ]; then
    failed+=("$t")
    line="$line -- FAILED (exit $rc)"
    echo "--- fuzz_$t output (last 60 lines; full log: $dir/log)"
    grep -v '^#[0-9]' "$dir/log" | tail -60
    for a in $artifacts; do
      echo "fuzz: reproducer written to $a"
      echo "fuzz:   replay: $bin/fuzz/fuzz_$t $a"
      # The reproducer itself, so that it survives the machine (CI logs).
      echo "fuzz:   its bytes (base64; first 64 KiB):"
      head -c 65536 "$a" | base64 -w 76 | sed 's/^/fuzz:     /'
    done
  fi
  summary+=("$line")
done

echo
echo "fuzz summary (total wall time $(($(date +%s) - start_all)) s):"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (logs, corpora and reproducers under $work)"
  exit 1
fi
if [ "$keep" -eq 1 ]; then
  echo "fuzz: no crashes (grown corpora and logs under $work/<target>/)"
else
  rm -rf "$work"
  echo "fuzz: no crashes"
fi
