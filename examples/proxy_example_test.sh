#!/usr/bin/env bash
# Runs the example and checks that the child resolved the proxy and that the
# evict=true proxy removed the object.
set -euo pipefail
out=$("$TEST_SRCDIR/$TEST_WORKSPACE/examples/proxy_example")
echo "$out"
grep -q "child: resolved 10000000 bytes" <<<"$out"
grep -q "parent: child ok, object evicted: yes" <<<"$out"
