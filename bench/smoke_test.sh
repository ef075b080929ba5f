#!/usr/bin/env bash
# Runs one short pass of the benchmark suite over every connector at 100 B and
# 10 KB, then builds the report from its JSON. Fails if any row errors, if the
# console lacks a row's progress line, or if the report lacks its verdicts.
set -euo pipefail
root="$TEST_SRCDIR/$TEST_WORKSPACE"
out="$TEST_TMPDIR/bench"
mkdir -p "$out"
"$root/bench/proxystore_bench" --quick --sizes=100,10000 \
  --json="$out/suite.json" --tmp_dir="$TEST_TMPDIR" > "$out/stdout.txt" || {
  cat "$out/stdout.txt"
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
# Nothing of the run is left in the temporary directory.
[ -z "$(find "$TEST_TMPDIR" -maxdepth 1 -name 'proxystore-bench-*')" ]
echo "smoke: $rows rows"
