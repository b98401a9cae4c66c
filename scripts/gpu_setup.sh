#!/usr/bin/env bash
# Prepare an offline GPU machine (Python 3.12, torch + CUDA preinstalled, no network) to run selfalign
# with the same library versions as the development venv: everything but torch, numpy, pandas and
# pyarrow (too big to carry; the machine's own are used) travels as wheels in .gpu/whl (git-ignored).
#
#   source scripts/gpu_setup.sh     # sets PYTHONPATH in this shell (preferred)
#   bash scripts/gpu_setup.sh       # same steps; then run the `export PYTHONPATH=...` it prints
#
# Steps: install .gpu/whl/*.whl into $GPU_SITE (default /tmp/site) with pip --no-index --no-deps
# --no-compile (skipped when the same wheel set is already there); print python/torch/CUDA/library
# versions and where each library is loaded from; check the carried wheels' requirements against what
# is importable; import selfalign, selfalign.train.dpo, selfalign.generation, selfalign.checks_ifeval
# (and load the IFEval backend and trl's trainers); build random-init SmolLM2-shaped models from .gpu/tok
# into /tmp/m135 (135m) and /tmp/m17 (1.7b) with scripts/make_random_model.py unless they exist.
#
# Environment: GPU_SITE (target dir, default /tmp/site), PYTHON (default python3), GPU_SETUP_DEVICE
# (where models are initialised, default cuda), GPU_SETUP_MODELS=0 (skip building models).
#
# The work runs in a child bash, so `set -euo pipefail` holds there whatever the caller's shell does;
# when sourced, only the final `export PYTHONPATH=<site>:<repo root>` happens in the calling shell, its
# options are left alone, and a failure returns non-zero instead of exiting it.

if [ "${_SELFALIGN_GPU_INNER:-}" = 1 ]; then
    set -euo pipefail
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    site="${GPU_SITE:-/tmp/site}"
    py="${PYTHON:-python3}"
    device="${GPU_SETUP_DEVICE:-cuda}"
    cd "$root"

    shopt -s nullglob
    wheels=(.gpu/whl/*.whl)
    if [ "${#wheels[@]}" -eq 0 ]; then
        echo "gpu_setup: no wheels in $root/.gpu/whl" >&2
        exit 1
    fi

    # 1. wheels -> $site (reinstalled from scratch when the wheel set changed)
    stamp="$(printf '%s\n' "${wheels[@]##*/}" | sort | sha256sum | cut -c1-16)"
    if [ -f "$site/.gpu_setup_stamp" ] && [ "$(cat "$site/.gpu_setup_stamp")" = "$stamp" ]; then
        echo "== wheels: ${#wheels[@]} already installed in $site"
    else
        echo "== wheels: installing ${#wheels[@]} into $site"
        rm -rf "$site"
        "$py" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
            --target "$site" "${wheels[@]}"
        echo "$stamp" >"$site/.gpu_setup_stamp"
    fi
    export PYTHONPATH="$site:$root"

    # 2. versions and where they load from; requirements of the carried wheels
    echo "== versions"
    SITE="$site" "$py" - <<'PY'
import importlib
import importlib.metadata as md
import os
import platform
import re
import sys
from pathlib import Path

site = Path(os.environ["SITE"]).resolve()
print(f"python           {platform.python_version()} ({sys.executable})")
import torch

cuda = torch.cuda.is_available()
print(f"torch            {torch.__version__}  CUDA {torch.version.cuda}  available={cuda}"
      + (f"  {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}" if cuda else ""))
machine_own = {"numpy", "pandas", "pyarrow"}
bad = []
for mod in ["transformers", "tokenizers", "huggingface_hub", "safetensors", "accelerate", "peft", "trl",
            "datasets", "pydantic", "typer", "rich", "numpy", "pandas", "pyarrow"]:
    m = importlib.import_module(mod)
    here = Path(m.__file__).resolve().is_relative_to(site)
    print(f"{mod:<16} {md.version(mod):<12} {'carried' if here else 'machine'}  "
          f"{Path(m.__file__).parent}")
    if mod not in machine_own and not here:
        bad.append(mod)
if bad:
    sys.exit(f"gpu_setup: not loaded from {site}: {bad}")

# every requirement of the carried wheels, against the first distribution of that name on sys.path
from packaging.requirements import Requirement

def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()

first = {}
for d in md.distributions():
    if d.metadata["Name"]:
        first.setdefault(norm(d.metadata["Name"]), d)
problems = []
# (and those of the machine's torch/numpy/pandas/pyarrow, which now see e.g. the carried filelock,
# fsspec, jinja2, typing_extensions, python-dateutil, tzdata)
dists = [md.PathDistribution(info) for info in sorted(site.glob("*.dist-info"))]
for name in ["torch", "numpy", "pandas", "pyarrow"]:  # the machine's own
    try:
        dists.append(md.distribution(name))
    except md.PackageNotFoundError:
        print(f"({name} has no package metadata; its requirements are not checked)")
for d in dists:
    for r in d.requires or []:
        req = Requirement(r)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        have = first.get(norm(req.name))
        if have is None:
            problems.append(f"{d.metadata['Name']} {d.version} needs {req}: not installed")
        elif not req.specifier.contains(have.version, prereleases=True):
            problems.append(f"{d.metadata['Name']} {d.version} needs {req}: found {have.version}")
print("requirements (carried wheels, torch, numpy, pandas, pyarrow): " + ("all met" if not problems else "UNMET (warning only):"))
for p in problems:
    print("   ", p)
PY

    # 3. imports
    echo "== imports"
    "$py" - <<'PY'
import os

import selfalign
import selfalign.checks_ifeval
import selfalign.generation
import selfalign.train.dpo  # noqa: F401

from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer  # noqa: F401

try:  # not needed by the GPU check: a warning, not a failure
    selfalign.checks_ifeval.backend()  # if-verifiable, nltk, punkt, langdetect
    import gguf, json_repair, py3langid  # noqa: E401,F401
except Exception as e:  # noqa: BLE001
    print(f"warning: optional import failed: {type(e).__name__}: {e}")

print("imports ok: selfalign from", os.path.dirname(selfalign.__file__))
PY

    # 4. random-init models of real shapes
    if [ "${GPU_SETUP_MODELS:-1}" != "0" ]; then
        for spec in "135m /tmp/m135" "1.7b /tmp/m17"; do
            read -r size out <<<"$spec"
            if [ -f "$out/config.json" ] && [ -f "$out/model.safetensors" ]; then
                echo "== model $size: $out exists"
            else
                echo "== model $size: building $out on $device"
                "$py" scripts/make_random_model.py .gpu/tok "$out" "$size" --device "$device"
            fi
        done
    fi
    exit 0
fi

_selfalign_gpu_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_selfalign_gpu_site="${GPU_SITE:-/tmp/site}"
if _SELFALIGN_GPU_INNER=1 bash "$_selfalign_gpu_root/scripts/gpu_setup.sh"; then
    if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
        export PYTHONPATH="$_selfalign_gpu_site:$_selfalign_gpu_root"
        echo "== ready: PYTHONPATH=$PYTHONPATH"
    else
        echo "== ready; in your shell run:  export PYTHONPATH=$_selfalign_gpu_site:$_selfalign_gpu_root"
    fi
    unset _selfalign_gpu_root _selfalign_gpu_site
else
    _selfalign_gpu_rc=$?
    echo "gpu_setup: failed (exit $_selfalign_gpu_rc)" >&2
    unset _selfalign_gpu_root _selfalign_gpu_site
    if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
        eval "unset _selfalign_gpu_rc; return $_selfalign_gpu_rc"
    fi
    exit "$_selfalign_gpu_rc"
fi
