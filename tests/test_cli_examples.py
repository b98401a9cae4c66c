"""Every ``Example:`` line of every ``--help`` runs as printed (on a tiny model).

The examples are read from the command tree itself, so a new command's example is tested the day
it is written (a missing fixture fails :func:`test_every_example_is_covered`). Each runs in its own
working directory holding the files examples name (``prompts.jsonl``, ``pairs.jsonl`` …) and a
copy of ``examples/`` whose recipes are shrunk to tiny sizes; ``smollm2-135m`` on a command line
becomes the tiny model. The ``models`` examples need the real embedded model and run in a slow test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
REAL_MODEL = ("models",)  # command groups whose examples need the embedded model itself


def help_examples() -> list[str]:
    """Every ``Example: selfalign ...`` line in the help of every command."""
    import typer

    from selfalign.cli import _register, app

    _register()
    out: list[str] = []

    def walk(cmd) -> None:
        out.extend(m.strip() for m in re.findall(r"Example:\s*(selfalign [^\n]+)", cmd.help or ""))
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)

    walk(typer.main.get_command(app))
    return list(dict.fromkeys(out))


PROMPTS = [{"id": f"p{i}", "prompt": p, "meta": {"checks": c}} for i, (p, c) in enumerate([
    ("Say hello in lowercase.", [{"type": "lowercase"}]), ("Name a fruit. No commas.", [{"type": "no_commas"}]),
    ("Describe rain in under 10 words.", [{"type": "max_words", "n": 10}]),
    ("Mention the sun.", [{"type": "include_keywords", "keywords": ["sun"]}]),
    ("One line about cats.", [{"type": "max_words", "n": 12}]), ("A color, lowercase.", [{"type": "lowercase"}])])]
PAIRS = [{"prompt": p["prompt"], "chosen": f"good answer {i}", "rejected": f"bad {i}", "chosen_score": 4.0,
          "rejected_score": 1.0} for i, p in enumerate(PROMPTS * 2)]


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _shrink_recipe(path: Path, tiny: Path) -> None:
    cfg = yaml.safe_load(path.read_text())
    cfg.update(model=str(tiny), iterations=1, prompts_per_iteration=4)
    cfg["generate"] = {**cfg.get("generate", {}), "num_samples": 4, "max_new_tokens": 8, "batch_size": 16}
    cfg["pairs"] = {**cfg.get("pairs", {}), "include_unfinished": True}  # a tiny model never ends an answer
    cfg["train"] = {**cfg.get("train", {}), "max_length": 1024, "per_device_batch_size": 2, "num_epochs": 1}
    cfg["validation"] = {**cfg.get("validation", {}), "max_prompts": 2, "max_new_tokens": 8}
    if isinstance(cfg.get("judge"), dict) and "max_new_tokens" in cfg["judge"]:
        cfg["judge"]["max_new_tokens"] = 6
    if cfg.get("meta_judge", {}).get("enabled"):
        cfg["meta_judge"]["max_new_tokens"] = 4
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def _workspace(root: Path, tiny: Path) -> Path:
    """A directory with every file the examples name."""
    root.mkdir(parents=True)
    _jsonl(root / "prompts.jsonl", [{**p, "id": f"{p['id']}-{k}"} for k, p in enumerate(PROMPTS * 2)])
    cands = [{**p, "responses": [{"text": "hello sun", "finish": "stop"}, {"text": "A, B", "finish": "stop"}]}
             for p in PROMPTS]
    _jsonl(root / "candidates.jsonl", cands)
    _jsonl(root / "scored.jsonl", [{**c, "responses": [{**r, "score": float(k)} for k, r in enumerate(c["responses"])]}
                                   for c in cands])
    _jsonl(root / "pairs.jsonl", PAIRS)
    _jsonl(root / "prefs.jsonl", [{"prompt": r["prompt"], "chosen": r["chosen"], "reject": r["rejected"]} for r in PAIRS])
    _jsonl(root / "sft.jsonl", [{"prompt": p["prompt"], "completion": "ok."} for p in PROMPTS])
    import datasets

    datasets.Dataset.from_list(PAIRS).save_to_disk(str(root / "hf_prefs"))
    from selfalign.tabular.tables import load_table  # tabular examples: rows written like a generator would

    wine = load_table("wine").frame
    wine.sample(60, random_state=0).to_csv(root / "synthetic.csv", index=False)
    _jsonl(root / "generated.jsonl", [{"id": f"g{i}", "responses": [{"text": "Row: " + wine.iloc[i].to_json()}]}
                                      for i in range(5)])
    shutil.copytree(REPO / "examples", root / "examples")
    for data in (root / "examples" / "data").glob("*.jsonl"):  # checks a tiny random model passes at times
        _jsonl(data, [{"id": f"w{n}", "prompt": f"Answer in at most {n} words.",
                       "meta": {"checks": [{"type": "max_words", "n": n}, {"type": "no_commas"}]}}
                      for n in (2, 3, 4, 5, 6, 7)])
    for recipe in (root / "examples").glob("*.yaml"):
        _shrink_recipe(recipe, tiny)
    return root


def _run(cwd: Path, argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "SELFALIGN_NO_PROGRESS": "1"}
    return subprocess.run([sys.executable, "-m", "selfalign", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


def test_every_example_is_covered():
    examples = help_examples()
    assert len(examples) >= 12, examples
    groups = {shlex.split(e)[1] for e in examples}
    assert {"run", "generate", "judge", "pair", "train", "data", "report", "models"} <= groups


def test_help_examples_run_as_printed(tmp_path, tiny_model):
    ws = _workspace(tmp_path / "ws", tiny_model)
    examples = [e for e in help_examples() if shlex.split(e)[1] not in REAL_MODEL]
    # recipes first: `selfalign report runs/quickstart` reads the run `selfalign run` made
    examples.sort(key=lambda e: shlex.split(e)[1] != "run")
    failures, times = [], []

    def one(k: int, example: str) -> None:
        argv = [re.sub(r"(^|=)smollm2-135m$", lambda m: m.group(1) + str(tiny_model), a)
                for a in shlex.split(example)[1:]]
        cwd = ws
        if argv[0] not in ("run", "report"):  # a fresh copy, so examples never see each other's outputs
            cwd = tmp_path / f"ex{k}"
            shutil.copytree(ws, cwd, ignore=shutil.ignore_patterns("runs"))
        t0 = time.perf_counter()
        res = _run(cwd, argv)
        times.append(f"{time.perf_counter() - t0:6.1f} s  {example}")
        if res.returncode != 0:
            failures.append(f"{example}\n  exit {res.returncode}: {(res.stderr or res.stdout)[-800:]}")

    from concurrent.futures import ThreadPoolExecutor

    ordered = [(k, e) for k, e in enumerate(examples) if shlex.split(e)[1] in ("run", "report")]
    for k, e in ordered:  # in order, in the shared workspace: report reads what run wrote
        one(k, e)
    with ThreadPoolExecutor(2) as pool:  # the others in their own folders, two at a time (mostly imports)
        list(pool.map(lambda ke: one(*ke), [(k, e) for k, e in enumerate(examples) if (k, e) not in ordered]))
    print("\n".join(times))
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_model_examples_run_as_printed(tmp_path):
    for example in help_examples():
        if shlex.split(example)[1] in REAL_MODEL:
            res = _run(tmp_path, shlex.split(example)[1:])
            assert res.returncode == 0, f"{example}: {res.stderr[-800:]}"
