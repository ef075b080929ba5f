#!/usr/bin/env bash
# Runs the multi-host proxy test with its output, as root.
#
# What it does:
#  1. Checks that it runs as root and that `ip` (iproute2), redis-server and
#     redis-cli are installed (tools/setup.sh installs them).
#  2. Builds and runs, with Bazel, //testing:netns_test (the private network
#     itself) and //connectors/redis:redis_multihost_test, printing their
#     whole output (--test_output=all, never a cached result). The multi-host
#     test makes "hosts" out of network namespaces joined by a bridge in a
#     namespace of their own: a Redis Cluster (3 masters, 3 replicas) on two
#     hosts, a producer process on a third that puts objects of 100 B to
#     1 MB through a Store and sends only their proxies over TCP to consumer
#     processes on a fourth, which resolve them and check every byte; then
#     the same with one redis-server. Nothing is created in this machine's
#     own network namespace and no address outside the test's 10.x.y.0/24
#     is used.
#  3. Cleans up and checks: the namespaces are anonymous (no /run/netns
#     entries), held only by the test's processes, which die with it
#     (PR_SET_PDEATHSIG), so nothing should remain. On exit, also after a
#     failure or Ctrl-C, the script lists any network namespace that did not
#     exist before the run and is still held by the test's programs
#     (redis-server, redis-cli, the test binaries), with their pids, and
#     then exits non-zero. It kills nothing itself.
#
# Usage: sudo tools/multihost.sh [BAZEL TEST OPTIONS...]
#   e.g. tools/multihost.sh --config=asan
#   OUTPUT_BASE=/tmp/ob_mine tools/multihost.sh   (a separate Bazel server)
set -euo pipefail

cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "multihost: must run as root (network namespaces need CAP_SYS_ADMIN);" \
    "try: sudo $0 $*" >&2
  exit 1
fi
missing=()
for tool in ip redis-server redis-cli; do
  if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null; then
    missing+=("$tool")
  fi
done
if [ ${#missing[@]} -ne 0 ]; then
  echo "multihost: missing ${missing[*]}; run tools/setup.sh" >&2
  exit 1
fi

# Every network namespace some process holds (as its own, or open), as
# "net:[inode]" lines.
net_namespaces() {
  for link in /proc/[0-9]*/task/[0-9]*/ns/net /proc/[0-9]*/fd/*; do
    readlink "$link" 2>/dev/null || true
  done | grep '^net:\[' | sort -u
}

# The processes that hold namespace $1 ("net:[inode]").
holders() {
  for link in /proc/[0-9]*/task/[0-9]*/ns/net /proc/[0-9]*/fd/*; do
    if [ "$(readlink "$link" 2>/dev/null)" = "$1" ]; then
      pid=${link#/proc/}
      pid=${pid%%/*}
      echo "    pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
    fi
  done | sort -u
}

before=$(mktemp)
net_namespaces >"$before"

check_left_behind() {
  local status=$?
  local left ours=0
  left=$(net_namespaces | comm -13 "$before" - || true)
  rm -f "$before"
  for ns in $left; do
    local who
    who=$(holders "$ns")
    # Other programs on the machine may make namespaces meanwhile: only
    # those held by the test's own programs count.
    if grep -qE 'redis-server|redis-cli|redis_multihost_test|netns_test' \
      <<<"$who"; then
      echo "multihost: network namespace $ns left behind, held by:" >&2
      echo "$who" >&2
      ours=1
    fi
  done
  if [ "$ours" -ne 0 ]; then exit 1; fi
  echo "multihost: no network namespace left behind"
  exit "$status"
}
trap check_left_behind EXIT

bazel=(bazel)
if [ -n "${OUTPUT_BASE:-}" ]; then bazel+=(--output_base="$OUTPUT_BASE"); fi
"${bazel[@]}" test "$@" \
  --test_output=all --nocache_test_results \
  //testing:netns_test //connectors/redis:redis_multihost_test
