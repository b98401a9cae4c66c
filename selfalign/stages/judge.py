"""Stage ``judge``: candidates → scored candidates, with any registered judge.

Inputs: ``candidates`` (a candidates file), ``policy`` and ``base`` (model folders; optional).
Output: ``data`` (scored ``data.jsonl``). The judge config may name its model by role:
``model: self`` is the ``policy`` input (the model judging itself), ``model: base`` the ``base``
input (M_0); also inside a function judge's ``combine.with``. The config is hashed with the role
names, the models by content, so a new policy re-runs the judge and a moved run directory does not.

A parse-failure rate above the judge's ``max_parse_failure_rate`` (default 0.5) prints a loud
warning; the stage fails only when the config sets ``max_parse_failure_rate`` itself, so recipes on
models too small to keep a verdict format still run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import field_validator

from selfalign.config import StrictModel
from selfalign.pipeline import Stage
from selfalign.stages.base import numeric, stage
from selfalign.utils.progress import console, stats_table

ROLES = ("self", "base")


def resolve_roles(cfg: dict, policy: Path | None, base: Path | None) -> dict:
    """``cfg`` with ``model: self|base`` (also inside ``combine.with``) replaced by model paths."""
    out = dict(cfg)
    role = out.get("model")
    if role in ROLES:
        path = policy if role == "self" else base
        if path is None:
            raise ValueError(f"judge model {role!r} needs the {'policy' if role == 'self' else 'base'} input")
        out["model"] = str(path)
    comb = out.get("combine")
    if isinstance(comb, dict) and isinstance(comb.get("with"), dict):
        out["combine"] = {**comb, "with": resolve_roles(comb["with"], policy, base)}
    return out


def uses_role(cfg: dict | None, role: str) -> bool:
    """Whether a judge config (or its ``combine.with``) names ``model: role``."""
    if not isinstance(cfg, dict):
        return False
    comb = cfg.get("combine")
    return cfg.get("model") == role or (isinstance(comb, dict) and uses_role(comb.get("with"), role))


def parse_role_judge(cfg: dict, key: str, source: str = "") -> Any:
    """Validate a judge config whose model may be a role (``self``/``base``); errors name ``key``."""
    from selfalign.judges import parse_judge_config

    return parse_judge_config(resolve_roles(cfg, Path("."), Path(".")), source, key=key)


class JudgeStageConfig(StrictModel):
    """Which judge (a ``selfalign judge`` config: ``type`` plus that judge's keys)."""

    judge: dict[str, Any]

    @field_validator("judge")
    @classmethod
    def _valid(cls, v: dict) -> dict:
        parse_role_judge(v, "judge")
        return v


def judge_summary(records: list[dict], scored: list[dict], stats: dict) -> dict[str, Any]:
    """Judge statistics plus the fraction of unfinished responses and judge/check agreement."""
    from selfalign.eval.verifiable import judge_agreement_from_records

    agree = judge_agreement_from_records(scored)
    n_resp = sum(len(r["responses"]) for r in records)
    bad_ends = sum(1 for r in records for x in r["responses"] if x.get("finish") != "stop")
    return {**numeric(stats), "bad_ends_frac": bad_ends / max(n_resp, 1),
            "judge_check_agreement": agree.get("agreement"), "judge_check_pairs": agree.get("pairs")}


@stage("judge", JudgeStageConfig)
def judge(st: Stage, cfg: JudgeStageConfig, *, candidates: Path, policy: Path | None = None,
          base: Path | None = None) -> dict:
    from selfalign.data.io import read_records, write_jsonl
    from selfalign.judges import build_judge
    from selfalign.judges.base import check_parse_failures

    j = build_judge(resolve_roles(cfg.judge, policy, base))
    records = read_records(candidates)
    scored = j.score_records(records)
    s = j.stats()
    warning = check_parse_failures(j.cfg, s, fail="max_parse_failure_rate" in cfg.judge)
    if warning:
        console.print(f"[bold red]warning: {st.tag}: {warning}[/]")
    write_jsonl(st.output("data", "data.jsonl"), scored)
    console.print(stats_table({k: v for k, v in s.items() if k != "judge"}, f"judge: {s.get('judge')}"))
    return judge_summary(records, scored, s)
