#!/usr/bin/env bash
# Runs one short pass of the benchmark suite over every connector at 100 B and
# 10 KB, and of the workflow-memory, task-pipelining, stream-throughput and
# Redis Cluster scaling benchmarks on small objects, then builds the report
# from their JSON. Fails if any row errors, if the console lacks a row's
# progress line, if the report lacks its verdicts, its thread scaling (1-8
# threads on local, shm and redis, with their floors) or its cluster table
# (every operation at 1 and 4 threads against one server and the cluster),
# or if owned proxies or lifetimes leave anything in the workflow's store.
set -euo pipefail
root="$TEST_SRCDIR/$TEST_WORKSPACE"
out="$TEST_TMPDIR/bench"
mkdir -p "$out"
"$root/bench/proxystore_bench" --quick --sizes=100,10000 \
  --json="$out/suite.json" --tmp_dir="$TEST_TMPDIR" > "$out/stdout.txt" || {
  cat "$out/stdout.txt"
  exit 1
}
"$root/bench/workflow_memory" --quick --json="$out/workflow_memory.json" \
  > "$out/workflow.txt" || {
  cat "$out/workflow.txt"
  exit 1
}
"$root/bench/task_pipelining" --quick --json="$out/task_pipelining.json" \
  > "$out/pipelining.txt" || {
  cat "$out/pipelining.txt"
  exit 1
}
"$root/bench/stream_throughput" --quick \
  --json="$out/stream_throughput.json" > "$out/streams.txt" || {
  cat "$out/streams.txt"
  exit 1
}
"$root/bench/redis_cluster_scaling" --quick \
  --json="$out/redis_cluster.json" > "$out/cluster.txt" || {
  cat "$out/cluster.txt"
  exit 1
}
python3 "$root/tools/bench_report.py" "$out/suite.json" "$out" > "$out/report.txt"
if grep -q '"error_occurred": true' "$out/suite.json"; then
  grep -B2 -A2 '"error_message"' "$out/suite.json"
  exit 1
fi
rows=$(grep -c '"run_type": "iteration"' "$out/suite.json")
planned=$(sed -n 's/.*"proxystore_rows_planned": "\([0-9]*\)".*/\1/p' "$out/suite.json")
[ "$rows" -eq "$planned" ] || { echo "$rows rows of $planned planned"; exit 1; }
grep -q "^\[ *$planned/$planned\] " "$out/stdout.txt"
grep -q "## Speed targets" "$out/report.md"
grep -q "| redis get 10KB (byte view) vs raw hiredis GET |" "$out/report.md"
grep -q "^Complete: $planned rows" "$out/report.md"
grep -q "^## Workflow memory" "$out/report.md"
grep -q "^## Task pipelining" "$out/report.md"
grep -q "^| pipelined, proxy futures | " "$out/report.md"
grep -q "^## Stream throughput" "$out/report.md"
grep -q "^| 1.00 MB | 2 | .* items/s .* items/s .*x |$" "$out/report.md"
# Redis Cluster vs one server: every row ran and was checked (16 rows of
# the quick form, each with objects and CPU figures), and the report's table.
grep -q "^\[16/16\] cluster get_batch " "$out/cluster.txt"
python3 - "$out/redis_cluster.json" <<'PY'
import json, sys
rc = json.load(open(sys.argv[1]))
assert rc["complete"], "the cluster run is incomplete"
rows = {(r["target"], r["op"], r["threads"]): r for r in rc["rows"]}
for t in ("single", "cluster"):
    for op in ("put", "get", "put_batch", "get_batch"):
        for n in (1, 4):
            r = rows[(t, op, n)]
            assert r["objects"] > 0 and r["objects_per_s"] > 0, (t, op, n)
            assert r["server_cpu_s"] > 0 and r["client_cpu_s"] > 0, (t, op, n)
            assert r["p99_us"] >= r["p50_us"] > 0, (t, op, n)
assert len(rows) == 16, len(rows)
PY
grep -q "^## Redis Cluster vs one server" "$out/report.md"
for op in "put 1.00 KB" "get 1.00 KB" "put_batch 100x1.00 KB" \
  "get_batch 100x1.00 KB"; do
  for n in 1 4; do
    grep -q "^| $op | $n | [0-9.]*[kM]* | [0-9.]*[kM]* | [0-9.]*x | " \
      "$out/report.md" || {
      echo "no cluster row $op, $n threads"
      exit 1
    }
  done
done
# Thread scaling: every connector's table, every thread count, store rows
# beside their floors, and the picture (when gnuplot is there to draw it).
grep -q "^## Thread scaling" "$out/report.md"
for c in local shm redis; do
  grep -q "^### $c (1 KB)" "$out/report.md" || {
    echo "no thread table for $c"
    exit 1
  }
  for n in 1 2 4 8; do
    for op in get_hit get put proxy_resolve; do
      grep -q "\"run_name\": \"threads/$op/$c/${n}t\"" "$out/suite.json" || {
        echo "no row threads/$op/$c/${n}t"
        exit 1
      }
    done
  done
done
threads=$(grep -c '"ops_per_s"' "$out/suite.json")
[ "$threads" -ge 84 ] || { echo "$threads thread rows report ops_per_s"; exit 1; }
grep -q "^| 8 | get (cache hit) | [0-9.]*[kM]* | .* | map_lookup | " \
  "$out/report.md"
grep -q "^| 2 | put | .* | map_put | " "$out/report.md"
grep -q "^| 2 | get (uncached) | .* | shm_read | " "$out/report.md"
grep -q "^| 4 | proxy resolve | .* | redis_get | " "$out/report.md"
if command -v gnuplot > /dev/null; then
  [ -s "$out/threads.png" ]
  grep -q "](threads.png)" "$out/report.md"
fi
for v in "owned proxies" "context lifetimes"; do
  grep -q "^| $v: final store bytes = 0 | 0 B | \*\*MET\*\* |" "$out/report.md" || {
    grep "^| $v" "$out/report.md"
    exit 1
  }
done
# Nothing of the run is left in the temporary directory.
[ -z "$(find "$TEST_TMPDIR" -maxdepth 1 -name 'proxystore-bench-*')" ]
echo "smoke: $rows rows"
