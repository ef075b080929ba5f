#!/usr/bin/env bash
# Runs the benchmark suite (optimized build) and writes its report. Installs
# what it needs first; starts its own private redis-server (loopback port and
# Unix socket) and cleans up after itself.
#
#   tools/bench.sh                    # the whole suite: every connector
#                                     #   (local, file, shm, redis over TCP and
#                                     #   a Unix socket, multi), every size
#   tools/bench.sh --connectors=local --sizes=100,1000000   # a subset
#   tools/bench.sh --quick            # a short pass (what CI's smoke test runs)
#   PROXYSTORE_BENCH_OUT=dir          # output folder (default bench-out/)
#
# Output: <out>/proxystore_bench.json (Google Benchmark JSON, raw),
#         <out>/report.md (p50/p99, ratios to the floors, target verdicts),
#         <out>/latency.png (p50 latency vs size per connector, log-log).
set -euo pipefail
cd "$(dirname "$0")/.."

connectors="local,file,shm,redis,redis_unix,multi"
sizes="100,10000,1000000,100000000"
extra=()
for arg in "$@"; do
  case "$arg" in
    --connectors=*) connectors="${arg#--connectors=}" ;;
    --sizes=*) sizes="${arg#--sizes=}" ;;
    --quick) extra+=(--quick) ;;
    --benchmark_*) extra+=("$arg") ;;
    *) echo "usage: $0 [--connectors=LIST] [--sizes=LIST] [--quick]" >&2; exit 2 ;;
  esac
done

bash tools/setup.sh
out="${PROXYSTORE_BENCH_OUT:-bench-out}"
mkdir -p "$out"

bazel build --config=opt //bench:proxystore_bench
# (Random interleaving of repetitions was tried: Google Benchmark 1.7 then
# reports rows only in late bursts, and after 45 minutes the suite had
# reported 184 of its 336 rows.) Without it, a run with 3 repetitions had
# reported 67 rows after 9 minutes (the 100 MB rows come later and cost
# more); --benchmark_repetitions=1 --benchmark_min_time=0.1 ran the whole
# suite in 4m40s.
reps=(--benchmark_repetitions=3 --benchmark_report_aggregates_only=true)
for e in "${extra[@]}"; do [ "$e" = --quick ] && reps=(); done
# Benchmark's console output shows progress row by row.
bazel-bin/bench/proxystore_bench --connectors="$connectors" --sizes="$sizes" \
  "${reps[@]}" "${extra[@]}" \
  --benchmark_out="$out/proxystore_bench.json" --benchmark_out_format=json
python3 tools/bench_report.py "$out/proxystore_bench.json" "$out"
echo "results: $out/report.md, $out/latency.png, $out/proxystore_bench.json"
