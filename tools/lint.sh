#!/usr/bin/env bash
# Lints every Bazel file of proxystore-cpp (BUILD.bazel, BUILD, *.bzl,
# WORKSPACE, MODULE.bazel, including examples/consumer/) with buildifier:
# formatting in check mode plus its lint warnings (native rules that must be
# loaded from rules_cc/rules_shell, missing docstrings, and so on). Installs
# buildifier with npm if it is missing.
#
#   tools/lint.sh            # check; exits non-zero on any finding
#   tools/lint.sh --fix      # rewrite files in place (format + fixable lints)
set -euo pipefail
cd "$(dirname "$0")/.."

fix=0
for arg in "$@"; do
  case "$arg" in
    --fix) fix=1 ;;
    *) echo "usage: $0 [--fix]" >&2; exit 2 ;;
  esac
done

if ! command -v buildifier >/dev/null 2>&1; then
  echo "lint: installing buildifier (npm @bazel/buildifier)" >&2
  npm install -g @bazel/buildifier >&2
fi

# Tracked and new (not ignored) files in a git checkout; otherwise every file
# outside Bazel's output symlinks.
list_files() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard
  else
    find . \( -name 'bazel-*' -o -name .git \) -prune -o -type f -print0 |
      sed -z 's|^\./||'
  fi
}

files=()
while IFS= read -r -d '' f; do
  [[ -f "$f" ]] || continue  # deleted in the work tree, still in the index
  case "$(basename "$f")" in
    BUILD | BUILD.bazel | WORKSPACE | WORKSPACE.bazel | MODULE.bazel | *.bzl)
      files+=("$f") ;;
  esac
done < <(list_files)

if [[ ${#files[@]} -eq 0 ]]; then
  echo "lint: no Bazel files found" >&2
  exit 1
fi

if [[ $fix -eq 1 ]]; then
  buildifier -mode=fix -lint=fix "${files[@]}"
fi

if buildifier -mode=check -lint=warn "${files[@]}"; then
  echo "lint: buildifier: ${#files[@]} files clean"
else
  echo "lint: buildifier found problems (tools/lint.sh --fix rewrites what it can)" >&2
  exit 1
fi
