#!/usr/bin/env bash
# The C++ producer's objects, resolved by the Python consumer through proxy
# references: checks what the consumer printed. Skips (exit 0, saying why)
# where Python ProxyStore cannot be imported.
set -euo pipefail
here="$TEST_SRCDIR/$TEST_WORKSPACE/examples/python_interop"
python_dir="${PROXYSTORE_PYTHON_DIR:-/work/shared/python-proxystore}"
if [ ! -f "$python_dir/env.sh" ]; then
  echo "SKIPPED: no Python ProxyStore at $python_dir (set PROXYSTORE_PYTHON_DIR)"
  exit 0
fi
# shellcheck disable=SC1091
source "$python_dir/env.sh" >&2
# NumPy from Debian's python3-numpy where this python3 has none of its own.
if ! python3 -c 'import numpy' 2>/dev/null; then
  export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}/usr/lib/python3/dist-packages"
fi
if ! python3 -c 'import proxystore.store, numpy' 2>/dev/null; then
  echo "SKIPPED: python3 cannot import proxystore.store and numpy"
  exit 0
fi
dir="$TEST_TMPDIR/shared"
mkdir -p "$dir"
"$TEST_SRCDIR/$TEST_WORKSPACE/examples/python_interop_producer" "$dir" > "$TEST_TMPDIR/references"
cat "$TEST_TMPDIR/references"
out=$(python3 "$here/consumer.py" < "$TEST_TMPDIR/references")
echo "$out"
grep -qx "str: 'state after 1000 steps'" <<<"$out"
grep -qx "bytes: b'\\\\x01\\\\x02\\\\x03'" <<<"$out"
grep -qx "ndarray of 1000: sum 249750.0" <<<"$out"
