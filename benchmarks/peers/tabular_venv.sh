#!/usr/bin/env bash
# The tabular peers' own venv (SDV 2.x, GReaT, sdmetrics), kept apart from the project venv: sdmetrics
# and SDV want pandas < 3, be-great pins its own transformers range. Usage:
#   bash benchmarks/peers/tabular_venv.sh [VENV]      (default .venv-tabpeers; re-running is a no-op)
# The benchmark (python -m benchmarks.tabular_peers) calls this itself when the venv is missing.
set -euo pipefail
VENV="${1:-.venv-tabpeers}"
PY="${PYTHON:-python3}"
if [ -f "$VENV/.installed" ]; then exit 0; fi
test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
# the CPU torch wheel first, so nothing later pulls multi-GB CUDA wheels
$PIP install -q "torch==2.13.0"
$PIP install -q "sdv>=2,<3" "sdmetrics" "be-great" "pandas<3" "scikit-learn" "scipy" "palmerpenguins" "json-repair"
$VENV/bin/python -c "import sdv, sdmetrics, be_great, transformers, pandas, sklearn; print('sdv', sdv.__version__, \
'sdmetrics', sdmetrics.__version__, 'transformers', transformers.__version__, 'pandas', pandas.__version__, \
'sklearn', sklearn.__version__)"
touch "$VENV/.installed"
