#!/usr/bin/env bash
# Installs every Debian 12 package proxystore-cpp needs to build, test and
# benchmark; --bench adds what tools/bench.sh --compare uses. Idempotent:
# packages already present are skipped, and apt-get runs only when something
# is missing. Needs root (or sudo) only in that case.
set -euo pipefail

PACKAGES=(
  # Build
  bazel-bootstrap g++ pkg-config
  # Libraries (Debian -dev packages, wrapped in third_party/BUILD.bazel)
  libabsl-dev libflatbuffers-dev flatbuffers-compiler libspdlog-dev libfmt-dev
  liblz4-dev libhiredis-dev libsodium-dev libre2-dev
  nlohmann-json3-dev libtomlplusplus-dev
  # Tests and benchmarks (iproute2: `ip` for testing/netns, the multi-host
  # tests' network namespaces; not in minimal Debian images)
  libgtest-dev libgmock-dev libbenchmark-dev redis-server iproute2
  # Benchmark report plot
  gnuplot-nox python3
  # Interop tests with Python ProxyStore (../shared/python-proxystore): the
  # Debian modules it needs besides pydantic, and NumPy for the array formats
  python3-numpy python3-redis python3-tomli-w
  # Fuzzing and sanitizers with clang
  clang libclang-rt-14-dev
)
# tools/bench.sh --compare: Google Benchmark's compare.py and its statistics.
if [ "${1:-}" = "--bench" ]; then
  PACKAGES+=(libbenchmark-tools python3-scipy)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
