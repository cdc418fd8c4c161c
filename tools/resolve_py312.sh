#!/usr/bin/env bash
# Evidence that the pinned set installs on Python 3.12 (Colab): resolve requirements.txt with
# constraints.txt for CPython 3.12 on manylinux x86-64, without installing anything, and compare
# the result with constraints.txt. Needs PyPI; installs uv into a throw-away venv.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
python3 -m venv "$tmp/venv" && "$tmp/venv/bin/pip" install --quiet uv
"$tmp/venv/bin/uv" pip compile --quiet --python-version 3.12 --python-platform x86_64-manylinux_2_28 \
  requirements.txt -c constraints.txt -o "$tmp/py312.txt"
"$tmp/venv/bin/python" - "$tmp/py312.txt" <<'PY'
import re, sys
def pins(path):
    out = {}
    for line in open(path):
        m = re.match(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line.split("#")[0].strip())
        if m:
            out[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return out
cp312, pinned = pins(sys.argv[1]), pins("constraints.txt")
differ = {k: (cp312[k], pinned[k]) for k in set(cp312) & set(pinned) if cp312[k] != pinned[k]}
print(f"cp312 resolution: {len(cp312)} packages; versions that differ from constraints.txt: {differ or 'none'}")
print("only for cp312 (PyPI's Linux torch wheel pulls CUDA; the CPU index avoids them):",
      sorted(set(cp312) - set(pinned)))
print("only in constraints.txt:", sorted(set(pinned) - set(cp312)))
sys.exit(1 if differ else 0)
PY
