"""Kill-and-resume harness for recipe end-to-end tests.

:func:`check_kill_and_resume` runs a recipe command once without interruption (the reference), then
again into a second output root, killing it with SIGKILL at random moments (seeded; drawn over the
reference's wall time, so the kills land in different stages) and re-running the same command
after each kill until it finishes. It then asserts that the two run directories hold

* byte-identical data: every file under every stage directory, except the bookkeeping that
  legitimately differs (``manifest.json`` timings, ``checkpoints/``, logs, the HTML report, metrics,
  progress shards' temp files);
* equal model weights: every tensor of every ``*.safetensors`` under a stage's ``model/`` folder
  (exactly equal on CPU; the saved files may differ in metadata order only).

The command runs as a subprocess; ``driver`` (Python source run with ``-c``) lets a test patch
something before calling the CLI (e.g. a stand-in judge), as ``python -c driver run CFG``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

SKIP_NAMES = {"manifest.json", "report.html", "metrics.jsonl", "stdout.log", "stderr.log",
              "train_summary.json"}  # timings and paths
SKIP_DIRS = {"checkpoints"}


def _launch(args: list[str], driver: str | None, cwd: Path | None) -> subprocess.Popen:
    env = {**os.environ, "SELFALIGN_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", driver, *args] if driver else [sys.executable, "-m", "selfalign", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)


def run_to_end(args: list[str], driver: str | None = None, cwd: Path | None = None, timeout: float = 600) -> float:
    """Run the command to completion; returns its wall time (asserts exit 0)."""
    t0 = time.time()
    p = _launch(args, driver, cwd)
    out, _ = p.communicate(timeout=timeout)
    assert p.returncode == 0, out[-3000:]
    return time.time() - t0


def data_files(run_dir: Path) -> dict[str, Path]:
    """Relative path → file for everything that must be identical after a resume."""
    out = {}
    for stage in sorted(d for d in run_dir.iterdir() if d.is_dir()):
        for f in stage.rglob("*"):
            rel = f.relative_to(run_dir)
            if (f.is_file() and f.name not in SKIP_NAMES and not SKIP_DIRS & set(rel.parts)
                    and not f.name.startswith(".tmp")):
                out[str(rel)] = f
    return out


def assert_same_runs(ref: Path, got: Path) -> None:
    from safetensors.torch import load_file

    a, b = data_files(ref), data_files(got)
    assert sorted(a) == sorted(b), f"different files: only in reference {sorted(set(a) - set(b))}, " \
                                   f"only in resumed {sorted(set(b) - set(a))}"
    for rel, fa in a.items():
        if rel.endswith(".safetensors"):
            ta, tb = load_file(fa), load_file(b[rel])
            assert ta.keys() == tb.keys(), rel
            for k in ta:
                assert (ta[k] == tb[k]).all(), f"{rel}: tensor {k} differs after resume"
        else:
            assert fa.read_bytes() == b[rel].read_bytes(), f"{rel} differs after resume"


def check_kill_and_resume(make_args, ref_root: Path, run_root: Path, name: str, kills: int = 3, seed: int = 0,
                          driver: str | None = None, cwd: Path | None = None, timeout: float = 600) -> list[float]:
    """``make_args(output_root) -> CLI args``. Returns the kill times (seconds into each attempt that was
    killed; a resumed attempt that finishes before its kill time ends the series)."""
    ref_time = run_to_end(make_args(ref_root), driver, cwd, timeout)
    rng = random.Random(seed)
    # kill points spread over the reference timeline; attempt i waits for the gap since the last point
    # (plus a start-up allowance after a resume: imports and model loading are redone)
    points = sorted(rng.uniform(0.1, 0.95) * ref_time for _ in range(kills))
    gaps = [b - a + (3.0 if i else 0.0) for i, (a, b) in enumerate(zip([0.0, *points], points))]
    times, killed = [], 0
    deadline = time.time() + timeout
    while True:
        p = _launch(make_args(run_root), driver, cwd)
        at = gaps[killed] if killed < kills else None
        t0 = time.time()
        while p.poll() is None and time.time() < deadline:
            if at is not None and time.time() - t0 >= at:
                p.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        out, _ = p.communicate(timeout=max(1.0, deadline - time.time()))
        if p.returncode == -signal.SIGKILL:
            killed += 1
            times.append(round(at, 2))
            continue
        assert p.returncode == 0, out[-3000:]
        break
    assert killed >= 1, f"no kill landed before the run finished (reference took {ref_time:.1f} s)"
    assert_same_runs(ref_root / name, run_root / name)
    return times
