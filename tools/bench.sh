#!/usr/bin/env bash
# Runs the benchmark suite (optimized build) and writes its report. Installs
# what it needs first; the suite starts its own private redis-server (loopback
# port and Unix socket) and cleans up after itself.
#
#   tools/bench.sh              # every connector (local, file, shm, redis over
#                               #   TCP and a Unix socket, multi), every size,
#                               #   every floor and verdict, and the thread
#                               #   rows (1-8 threads sharing one store on
#                               #   local, shm and redis): 2m09s on 2 idle
#                               #   cores; then
#                               #   the workflow-memory benchmark
#                               #   (bench/workflow_memory.cc, objects of 1-10 MB)
#                               #   and the task-pipelining benchmark
#                               #   (bench/task_pipelining.cc, 3 repetitions of
#                               #   a chain of 8 task processes, ~10 s) and the
#                               #   stream-throughput benchmark
#                               #   (bench/stream_throughput.cc, ~30 s) and the
#                               #   Redis Cluster scaling benchmark
#                               #   (bench/redis_cluster_scaling.cc, one server
#                               #   vs a 3-master cluster, 1-8 threads, ~35 s);
#                               #   3m14s in all with the build cached
#   tools/bench.sh --full       # more repetitions of rows with over ten times
#                               #   the work each; workflow objects of 1-100 MB;
#                               #   10 repetitions of the task chain; 5x the
#                               #   stream items; 5 repetitions of 0.8 s for
#                               #   each cluster scaling row
#   tools/bench.sh --connectors=local --sizes=100,1000000   # a subset
#   tools/bench.sh --filter=redis                           # rows by name (regex)
#                               # (a subset skips the workflow-memory,
#                               # task-pipelining, stream and cluster runs)
#   tools/bench.sh --filter=threads --connectors=local,shm,redis
#                               # the thread scaling rows only
#   tools/bench.sh --quick      # one short pass (what CI's smoke test runs)
#   tools/bench.sh --compare A.json B.json
#                               # A/B of two runs: Google Benchmark's compare.py
#                               #   (per-row change, Mann-Whitney U test over
#                               #   the repetitions), then the verdicts that moved
#   PROXYSTORE_BENCH_OUT=dir    # output folder (default bench-out/)
# (--repetitions=N and --min_time=SECONDS override the form's values; the
# thread rows take the repetitions only.)
#
# Output, in <out>/: proxystore_bench.json (Google Benchmark JSON, rewritten
# after every row), report.md (verdicts, then per connector p50, range over
# repetitions, p99, faults and heap per op, ratio to the floor; then thread
# scaling: ops/s of 1-8 threads beside their floors), verdicts.png,
# connectors.png, threads.png, workflow_memory.json and workflow_memory.png
# (its section of the report), task_pipelining.json and pipelining.png (its
# section), stream_throughput.json and streams.png (its section),
# redis_cluster.json (its section, "Redis Cluster vs one server"). A
# connector's rows of one object size take turns (one repetition each per
# round): the run prints "[local 10KB] round r of R ... elapsed, ETA" as
# rounds end and "[n/N] row ... elapsed, ETA" as rows finish.
# Interrupted (Ctrl-C, SIGTERM, a timeout), the run
# still writes the report of the rows measured so far; its temporary files
# are removed either way.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

args=()
compare=()
workflow_args=()
subset=0
while [ $# -gt 0 ]; do
  case "$1" in
    --compare)
      [ $# -ge 3 ] || usage
      compare=("$2" "$3")
      shift 3
      continue
      ;;
    --connectors=* | --sizes=* | --filter=*) args+=("$1"); subset=1 ;;
    --quick | --full) args+=("$1"); workflow_args+=("$1") ;;
    --repetitions=* | --min_time=* | --benchmark_*) args+=("$1") ;;
    *) usage ;;
  esac
  shift
done

bash tools/setup.sh --bench

if [ ${#compare[@]} -eq 2 ]; then
  for f in "${compare[@]}"; do
    [ -s "$f" ] || { echo "bench.sh: no such JSON: $f" >&2; exit 2; }
  done
  compare_py=/usr/share/benchmark/compare.py
  # Debian's python3 (where python3-scipy lives), even under a python3 of
  # one's own earlier on PATH.
  py=python3
  [ -x /usr/bin/python3 ] && py=/usr/bin/python3
  if [ -f "$compare_py" ] && "$py" -c 'import scipy' 2>/dev/null; then
    color=()
    [ -t 1 ] || color=(--no-color)
    # -a: the aggregates of each row (mean, median, stddev, cv) and the U
    # test over its repetitions, not every repetition.
    "$py" "$compare_py" "${color[@]}" -a benchmarks "${compare[0]}" "${compare[1]}"
    echo
  else
    echo "bench.sh: compare.py needs Debian's libbenchmark-tools and" \
      "python3-scipy; showing the verdicts only" >&2
  fi
  exec python3 tools/bench_report.py --compare "${compare[0]}" "${compare[1]}"
fi

out="${PROXYSTORE_BENCH_OUT:-bench-out}"
mkdir -p "$out"
json="$out/proxystore_bench.json"
rm -f "$json" "$json.partial" "$out"/report.md "$out"/*.png "$out"/*.gp \
  "$out"/latency.dat "$out"/workflow_memory.json "$out"/task_pipelining.json \
  "$out"/stream_throughput.json "$out"/redis_cluster.json

bazel build --config=opt //bench:proxystore_bench //bench:workflow_memory \
  //bench:task_pipelining //bench:stream_throughput \
  //bench:redis_cluster_scaling
# The optimized binary itself, from this configuration's output tree: the
# bazel-bin link follows whichever configuration (or output base) built last.
bin="$(bazel info --config=opt bazel-bin 2>/dev/null)/bench/proxystore_bench"
workflow_bin="$(dirname "$bin")/workflow_memory"
pipelining_bin="$(dirname "$bin")/task_pipelining"
streams_bin="$(dirname "$bin")/stream_throughput"
cluster_bin="$(dirname "$bin")/redis_cluster_scaling"

work="$(mktemp -d "${TMPDIR:-/tmp}/proxystore-bench-run.XXXXXX")"
bench_pid=""
start=$(date +%s)

finish() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
    kill -TERM "$bench_pid" 2>/dev/null || true
    wait "$bench_pid" 2>/dev/null || true
  fi
  if [ -s "$json" ]; then
    python3 tools/bench_report.py "$json" "$out" \
      --elapsed=$(($(date +%s) - start)) || rc=1
    echo "results: $out/report.md, $out/verdicts.png, $out/connectors.png," \
      "$out/threads.png, $out/proxystore_bench.json"
  fi
  rm -rf "$work"
  exit "$rc"
}
trap finish EXIT
# The suite ends its row under way and skips the rest on SIGTERM; the EXIT
# trap then writes the report of what was measured.
trap '[ -z "$bench_pid" ] || kill -TERM "$bench_pid" 2>/dev/null || true' \
  INT TERM HUP

# Runs a command in the background (so the traps above can stop it) and
# sets rc to its exit status. A trapped signal ends `wait` early: wait again
# until it has finished.
run() {
  "$@" &
  bench_pid=$!
  rc=0
  wait "$bench_pid" || rc=$?
  while kill -0 "$bench_pid" 2>/dev/null; do
    rc=0
    wait "$bench_pid" || rc=$?
  done
  bench_pid=""
}
run "$bin" "${args[@]}" --json="$json" --tmp_dir="$work"
if [ "$rc" -eq 0 ] && [ "$subset" -eq 0 ]; then
  run "$workflow_bin" "${workflow_args[@]}" --json="$out/workflow_memory.json"
fi
if [ "$rc" -eq 0 ] && [ "$subset" -eq 0 ]; then
  run "$pipelining_bin" "${workflow_args[@]}" \
    --json="$out/task_pipelining.json"
fi
if [ "$rc" -eq 0 ] && [ "$subset" -eq 0 ]; then
  run "$streams_bin" "${workflow_args[@]}" --json="$out/stream_throughput.json"
fi
if [ "$rc" -eq 0 ] && [ "$subset" -eq 0 ]; then
  run "$cluster_bin" "${workflow_args[@]}" --json="$out/redis_cluster.json"
fi
exit "$rc"
