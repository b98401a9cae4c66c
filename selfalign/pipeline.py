"""Stage runner: run directory, manifests, input hashing, skip / resume, atomic completion.

A recipe is rounds of stages. Each stage lives in ``runs/<name>/r{round}s{step}-{stage}/`` and
records a ``manifest.json``::

    {"stage", "round", "step", "status": "running" | "done" | "failed",
     "inputs": {name: {"path", "hash"}}, "config_hash", "config",
     "outputs": {name: {"path", "hash"}}, "metrics": {...},
     "started", "finished", "seconds", "attempts", "peak_rss_mb"}

``peak_rss_mb`` is the process's peak resident memory when the stage ended (the peak so far of the
whole run process, so it never decreases from one stage to the next).

Rules (what "re-run the same command" does):

* ``done`` and the same input hashes and config hash, outputs present → skipped.
* ``done`` but an input or the config changed → the stage directory is cleared and the stage re-runs
  (and so, through their input hashes, do the stages that consume its outputs).
* ``running`` / ``failed`` (a crash, a kill or Ctrl-C) with unchanged inputs → the stage function is
  called again with the same directory, so a trainer resumes from its last checkpoint and a generator
  keeps its finished shards. With changed inputs the directory is cleared first.

The stage function writes its outputs inside the stage directory itself (atomically: temp name, then
rename — see :func:`selfalign.data.io.atomic_output`), and the manifest flips to ``done`` only after
the function returned, so a stage is never marked finished with half-written outputs.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from selfalign.config import config_hash, dump_yaml
from selfalign.data.io import atomic_output, write_text_atomic
from selfalign.utils.metrics import MetricsLogger
from selfalign.utils.progress import console

MANIFEST = "manifest.json"


def hash_path(path: str | Path) -> str:
    """Content hash (sha256, 16 hex) of a file, or of every file in a folder (names + bytes, sorted).

    Hidden temp files (names starting with ``.tmp``) are ignored.
    """
    p = Path(path)
    h = hashlib.sha256()
    if p.is_file():
        _hash_file(p, h)
    elif p.is_dir():
        for f in sorted(x for x in p.rglob("*") if x.is_file() and not x.name.startswith(".tmp")):
            h.update(str(f.relative_to(p)).encode())
            _hash_file(f, h)
    else:
        return "missing"
    return h.hexdigest()[:16]


def _hash_file(p: Path, h) -> None:
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


def _write_json_atomic(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str))


@dataclass
class Stage:
    """A stage being run: where to write, what to log; handed to the stage function."""

    name: str
    round: int
    step: int
    dir: Path
    run: Run
    metrics: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)
    resumed: bool = False

    @property
    def tag(self) -> str:
        return f"r{self.round}s{self.step}-{self.name}"

    def logger(self, echo_every: int = 0) -> MetricsLogger:
        """A metrics logger writing to the run's ``metrics.jsonl`` tagged with this stage."""
        return MetricsLogger(self.run.metrics_path, stage=self.tag, echo_every=echo_every)

    def output(self, name: str, relpath: str) -> Path:
        """Declare an output (recorded and hashed in the manifest) and return its path."""
        p = self.dir / relpath
        self.outputs[name] = p
        return p


@dataclass
class StageResult:
    name: str
    dir: Path
    outputs: dict[str, Path]
    metrics: dict[str, Any]
    skipped: bool
    seconds: float


def _remove_stale_temps(sdir: Path) -> None:
    """Delete ``.tmp-*`` files and folders under a stage dir being resumed: temporaries of atomic writes
    that a killed attempt never renamed (a complete output is always renamed; a live one belongs to
    no other process, since one stage dir is run by one process at a time)."""
    for p in sorted(sdir.rglob(".tmp-*"), key=lambda q: len(q.parts), reverse=True):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists() or p.is_symlink():
            p.unlink(missing_ok=True)


class Run:
    """A run directory ``root`` holding the frozen config, stage directories and metrics."""

    def __init__(self, root: str | Path, config: BaseModel | dict | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.root / "metrics.jsonl"
        self.results: list[StageResult] = []
        if config is not None:
            cfg_path = self.root / "config.yaml"
            old = cfg_path.read_text(encoding="utf-8") if cfg_path.exists() else None
            with atomic_output(cfg_path) as tmp:
                dump_yaml(config, tmp)
                new = tmp.read_text(encoding="utf-8")
            if old is not None and old != new:
                console.print("[yellow]config changed since the last run of this directory: stages "
                              "whose settings changed will re-run[/]")

    # ------------------------------------------------------------------ helpers
    def stage_dir(self, name: str, round: int, step: int) -> Path:
        return self.root / f"r{round}s{step}-{name}"

    def read_manifest(self, stage_dir: Path) -> dict | None:
        p = stage_dir / MANIFEST
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return None

    def _input_hash(self, path: Path) -> str:
        """Hash of an input; reuses the hash a finished stage recorded for its own output."""
        path = Path(path)
        try:
            rel = path.resolve().relative_to(self.root.resolve())
        except ValueError:
            return hash_path(path)
        man = self.read_manifest(self.root / rel.parts[0]) if rel.parts else None
        if man and man.get("status") == "done":
            for out in man.get("outputs", {}).values():
                if Path(out["path"]).resolve() == path.resolve():
                    return out["hash"]
        return hash_path(path)

    # ------------------------------------------------------------------ the runner
    def stage(self, name: str, round: int, step: int, fn: Callable[[Stage], dict | None],
              inputs: dict[str, str | Path] | None = None, config: BaseModel | dict | None = None,
              ) -> StageResult:
        """Run ``fn(stage)`` unless a finished, up-to-date result exists; return the result."""
        sdir = self.stage_dir(name, round, step)
        inputs = {k: Path(v) for k, v in (inputs or {}).items() if v is not None}
        in_hashes = {k: self._input_hash(v) for k, v in inputs.items()}
        cfg_dict = (config.model_dump(mode="json") if isinstance(config, BaseModel) else (config or {}))
        chash = config_hash(cfg_dict)
        man = self.read_manifest(sdir)
        same = (man is not None and man.get("config_hash") == chash
                and {k: v["hash"] for k, v in man.get("inputs", {}).items()} == in_hashes)
        if man and same and man.get("status") == "done" and all(
                Path(o["path"]).exists() for o in man.get("outputs", {}).values()):
            console.print(f"[green]✓[/] {sdir.name}: done earlier, inputs unchanged — skipped")
            res = StageResult(name, sdir, {k: Path(o["path"]) for k, o in man["outputs"].items()},
                              man.get("metrics", {}), True, man.get("seconds", 0.0))
            self.results.append(res)
            return res
        resumed = bool(man and same and man.get("status") in ("running", "failed"))
        if man and not resumed and sdir.exists():
            why = "inputs or config changed" if man.get("status") == "done" else "stale attempt"
            console.print(f"[yellow]↻[/] {sdir.name}: {why} — re-running from scratch")
            shutil.rmtree(sdir)
        elif resumed:
            console.print(f"[yellow]↻[/] {sdir.name}: unfinished earlier — resuming")
            _remove_stale_temps(sdir)
        sdir.mkdir(parents=True, exist_ok=True)
        manifest = {
            "stage": name, "round": round, "step": step, "status": "running",
            "inputs": {k: {"path": str(v), "hash": in_hashes[k]} for k, v in inputs.items()},
            "config_hash": chash, "config": cfg_dict, "outputs": {}, "metrics": {},
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "finished": None, "seconds": None,
            "attempts": (man.get("attempts", 0) if resumed and man else 0) + 1,
        }
        _write_json_atomic(sdir / MANIFEST, manifest)
        st = Stage(name, round, step, sdir, self, resumed=resumed)
        console.rule(f"[bold]{st.tag}")
        t0 = time.time()
        try:
            extra = fn(st) or {}
        except BaseException:
            manifest["status"] = "failed"
            manifest["seconds"] = builtins.round(time.time() - t0, 3)
            _write_json_atomic(sdir / MANIFEST, manifest)
            raise
        st.metrics.update(extra)
        missing = [str(p) for p in st.outputs.values() if not p.exists()]
        if missing:
            manifest["status"] = "failed"
            _write_json_atomic(sdir / MANIFEST, manifest)
            raise RuntimeError(f"stage {st.tag} finished without writing its outputs: {missing}")
        secs = builtins.round(time.time() - t0, 3)
        manifest.update(
            status="done", finished=time.strftime("%Y-%m-%dT%H:%M:%S"), seconds=secs,
            metrics=_jsonable(st.metrics), peak_rss_mb=_peak_rss_mb(),
            outputs={k: {"path": str(p), "hash": hash_path(p)} for k, p in st.outputs.items()},
        )
        _write_json_atomic(sdir / MANIFEST, manifest)
        res = StageResult(name, sdir, dict(st.outputs), dict(st.metrics), False, secs)
        self.results.append(res)
        return res

    def manifests(self) -> list[dict]:
        """Manifests of every stage directory, in (round, step) order."""
        out = []
        for d in self.root.iterdir():
            if d.is_dir():
                m = self.read_manifest(d)
                if m:
                    m["dir"] = str(d)
                    out.append(m)
        return sorted(out, key=lambda m: (m["round"], m["step"]))


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def _peak_rss_mb() -> float | None:
    """Peak resident memory of this process in MiB (None where the platform cannot say)."""
    try:
        import resource
        import sys

        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return None
    return builtins.round(r / 2**20 if sys.platform == "darwin" else r / 1024, 1)
