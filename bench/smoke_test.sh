#!/usr/bin/env bash
# Runs one short pass of the benchmark suite over every connector at 100 B and
# 10 KB, then builds the report from its JSON. Fails if any row errors.
set -euo pipefail
root="$TEST_SRCDIR/$TEST_WORKSPACE"
out="$TEST_TMPDIR/bench"
mkdir -p "$out"
"$root/bench/proxystore_bench" --quick --sizes=100,10000 \
  --benchmark_out="$out/suite.json" \
  --benchmark_out_format=json > "$out/stdout.txt"
python3 "$root/tools/bench_report.py" "$out/suite.json" "$out"
if grep -q '"error_occurred": true' "$out/suite.json"; then
  grep -B2 -A2 '"error_message"' "$out/suite.json"
  exit 1
fi
grep -q "## Speed targets" "$out/report.md"
grep -q "store/get/redis/10KB\|| get | 10KB" "$out/report.md"
echo "smoke: $(grep -c '"run_name"' "$out/suite.json") rows"
