#!/usr/bin/env bash
# Every ```cpp block of README.md must be one "// [readme: NAME]" ... "// [end]"
# block of examples/readme_snippets.cc, character for character, and every
# such block must be in the README: the README shows only code that compiles
# and runs (//examples:readme_snippets_test).
set -euo pipefail
root="$TEST_SRCDIR/$TEST_WORKSPACE"
python3 - "$root/README.md" "$root/examples/readme_snippets.cc" <<'PY'
import re, sys
readme = open(sys.argv[1]).read()
source = open(sys.argv[2]).read()
blocks = re.findall(r"^```cpp\n(.*?)^```$", readme, re.S | re.M)
snippets = dict(re.findall(r"^// \[readme: ([a-z_]+)\]\n(.*?)^// \[end\]$",
                           source, re.S | re.M))
errors = []
for i, b in enumerate(blocks, 1):
    if b not in snippets.values():
        errors.append(f"README.md's C++ block {i} (starting {b.splitlines()[0]!r}) "
                      "is not a block of examples/readme_snippets.cc")
for name, s in snippets.items():
    if s not in blocks:
        errors.append(f"examples/readme_snippets.cc block '{name}' is not in README.md")
if not blocks:
    errors.append("README.md has no C++ block")
for e in errors:
    print("FAIL:", e)
if errors:
    sys.exit(1)
print(f"{len(blocks)} README C++ blocks match examples/readme_snippets.cc")
PY
