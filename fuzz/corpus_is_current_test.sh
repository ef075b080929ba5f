#!/usr/bin/env bash
# Checks that the committed seed corpora (fuzz/corpus/*/seed_*) are exactly
# what :make_corpus writes today, so that a wire-format change cannot leave
# the fuzzers starting from stale seeds. On failure, regenerate them:
#   bazel run //fuzz:make_corpus -- $PWD/fuzz/corpus
set -euo pipefail
make_corpus="$1"
committed="fuzz/corpus"
fresh="${TEST_TMPDIR:-$(mktemp -d)}/corpus"
rm -rf "$fresh"
"$make_corpus" "$fresh" >/dev/null

status=0
# Every generated seed must be committed, byte for byte...
while IFS= read -r f; do
  rel="${f#"$fresh"/}"
  if [ ! -f "$committed/$rel" ]; then
    echo "missing from the committed corpus: $committed/$rel"
    status=1
  elif ! cmp -s "$f" "$committed/$rel"; then
    echo "stale: $committed/$rel differs from what make_corpus writes now"
    status=1
  fi
done < <(find "$fresh" -type f -name 'seed_*' | sort)
# ...and every committed seed must still be generated.
while IFS= read -r f; do
  rel="${f#"$committed"/}"
  if [ ! -f "$fresh/$rel" ]; then
    echo "no longer generated: $committed/$rel"
    status=1
  fi
done < <(find -L "$committed" -type f -name 'seed_*' | sort)

if [ "$status" -ne 0 ]; then
  echo "regenerate: bazel run //fuzz:make_corpus -- \$PWD/fuzz/corpus"
  exit 1
fi
echo "$(find "$fresh" -type f | wc -l) seed files match the committed corpus"
