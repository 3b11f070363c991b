#!/usr/bin/env bash
# fgssl at the lowest versions pyproject.toml allows of the dependencies whose floor the code
# is known to depend on: scikit-learn (metrics, stratified splits, the linear probe) and timm
# (backbones: ConvNeXt's feature stages need timm 1.0.16). The floors are read from
# pyproject.toml, installed into a venv of their own, and the tests that exercise them run
# there (under 2 minutes on 2 cores). `make floors` runs it; CI does not (time is short).
#
# The venv holds the floors only: it lays them over the packages of a base environment
# (default .venv, made by `make install-test`; FLOORS_BASE=path/to/venv for another), which
# a .pth file puts on sys.path after the venv's own packages. So only the floors are
# downloaded (a few MB), and the rest of the environment is the one the suite runs with.
#
# Usage: bash scripts/check_floors.sh [pytest arguments]   (default: the tests below)
# Environment: FLOORS_BASE (default .venv), FLOORS_VENV (default .venv-floors, made anew).
set -euo pipefail
cd "$(dirname "$0")/.."
base=${FLOORS_BASE:-.venv}
venv=${FLOORS_VENV:-.venv-floors}
packages=(scikit-learn timm)
tests=(
    tests/test_splits.py tests/test_duplicates.py tests/test_data_custom.py
    tests/test_data_benchmarks.py tests/test_data_isic2018.py tests/test_models.py
    tests/test_metrics.py tests/test_screening.py tests/test_intervals.py
    tests/test_calibration.py tests/test_evaluation.py
)
if [ ! -x "$base/bin/python" ]; then
    echo "check_floors: $base/bin/python not found: run 'make install-test' first or set" \
        "FLOORS_BASE to a venv with fgssl's test dependencies" >&2
    exit 2
fi

# package==floor for each package, from pyproject.toml's dependencies ("name>=floor")
mapfile -t pins < <("$base/bin/python" - "${packages[@]}" <<'EOF'
import re
import sys

text = open("pyproject.toml", encoding="utf-8").read()
dependencies = text.split("dependencies = [", 1)[1].split("]", 1)[0]
for name in sys.argv[1:]:
    match = re.search(rf'"{re.escape(name)}\s*>=\s*([\w.]+)', dependencies)
    if match is None:
        sys.exit(f"check_floors: no '{name}>=' floor among pyproject.toml's dependencies")
    print(f"{name}=={match.group(1)}")
EOF
)
echo "check_floors: ${pins[*]} over the packages of $base"

rm -rf "$venv"
"$base/bin/python" -m venv --without-pip "$venv"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
base_site=$("$base/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$(cd "$base_site" && pwd)" > "$site/_fgssl_base.pth"
# --target: pip writes into the venv only and never uninstalls the base's newer versions
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --only-binary :all: --target "$site" "${pins[@]}"

"$venv/bin/python" - "${pins[@]}" <<'EOF'
import importlib.metadata
import sys

from packaging.version import Version

for pin in sys.argv[1:]:
    name, floor = pin.split("==")
    found = importlib.metadata.version(name)
    if Version(found) != Version(floor):
        sys.exit(f"check_floors: {name} {found} is imported, not the floor {floor}")
EOF

if [ $# -eq 0 ]; then
    set -- -m "not slow" "${tests[@]}"
fi
PYTHONPATH=src OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$venv/bin/python" -m pytest -q \
    -p no:cacheprovider "$@"
