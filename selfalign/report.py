"""``selfalign report RUN_DIR``: a self-contained ``report.html`` (plots embedded as PNG data URIs).

It reads only what the stage runner leaves in a run directory: the stage manifests (metrics of every
stage), ``metrics.jsonl`` (every scalar a trainer logged) and the stage outputs (scored candidates,
preference pairs, validation answers). Sections:

1. validation metrics across iterations (verifiable pass rates with 95% bootstrap intervals as
   error bars, the share of answers cut at the token limit, self-judge score, win rate vs M_0,
   judge agreement with the programmatic checks; the table adds mean answer length and the paired
   difference with M_0, its interval and p-values);
2. judge score distributions per iteration;
3. chosen / rejected judge scores and implicit rewards per iteration;
4. loss curves of every training stage;
5. bad-sample, bad-end and parse-failure rates per iteration;
6. a table of sample pairs;
7. when the run has them (:mod:`selfalign.report_rl`): principle-judge health, reward-model checks,
   PPO reward / KL / length curves.

Stage folders left by an earlier config (e.g. more ``iterations``) are ignored (:func:`is_current`);
a step logged twice (a resumed trainer) is shown once, the last value (:func:`dedupe_steps`);
a one-point series is drawn as a marker. A folder written by ``selfalign train`` by hand
(``metrics.jsonl`` and ``model/``, no manifests) gets its loss curves. A corrupt manifest or
``metrics.jsonl`` line is a one-line error naming ``file:line``.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from pathlib import Path

from selfalign.data.io import read_records, write_text_atomic
from selfalign.errors import DataError, SelfalignError
from selfalign.plots import fig_to_uri as _fig_to_uri
from selfalign.utils.metrics import read_metrics


def _read_manifest(path: Path) -> dict:
    """A stage manifest; a corrupt one is a one-line ``DataError`` naming ``file:line``."""
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text: {e.reason}", path) from None
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg} (column {e.colno})", path, e.lineno) from None
    if not isinstance(m, dict):
        raise DataError(f"expected a JSON object, got {type(m).__name__}", path, 1)
    for key in ("stage", "round", "step"):
        if key not in m:
            raise DataError("missing key", path, key=key)
    if not isinstance(m["round"], int) or not isinstance(m["step"], int):
        raise DataError("round and step must be integers", path, key="round")
    return m


def _current_config(run_dir: Path) -> dict:
    """The run's ``config.yaml`` as a mapping ({} when absent or unreadable)."""
    p = run_dir / "config.yaml"
    if not p.is_file():
        return {}
    import yaml

    try:
        cfg = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise DataError(f"invalid YAML: {str(e).splitlines()[0]}", p) from None
    return cfg if isinstance(cfg, dict) else {}


def is_current(m: dict, config: dict) -> bool:
    """Whether a stage belongs to the run's current config (stale stage folders are left behind
    when a run is re-run with fewer ``iterations`` or with validation switched off).

    The rule: with an integer ``iterations`` in ``config.yaml``, a stage of a later round is stale;
    with ``validation.enabled: false`` (or no ``heldout_file`` where the config has that key), every
    ``validate`` stage is stale. Everything else is current. (Manifest times cannot tell: a resumed
    run skips finished stages without touching their manifests, and rewrites config.yaml.)
    """
    iterations = config.get("iterations")
    if isinstance(iterations, int) and not isinstance(iterations, bool) and m["round"] > iterations:
        return False
    if m["stage"] == "validate":
        val = config.get("validation")
        if isinstance(val, dict) and val.get("enabled") is False:
            return False
        if "heldout_file" in config and not config.get("heldout_file"):
            return False
    return True


def _manifests(run_dir: Path) -> list[dict]:
    """The manifests of the stage folders that belong to the current config (:func:`is_current`)."""
    config = _current_config(run_dir)
    out = []
    for d in sorted(run_dir.iterdir()):
        p = d / "manifest.json"
        if d.is_dir() and p.is_file():
            m = _read_manifest(p)
            m["dir"] = d
            if is_current(m, config):
                out.append(m)
    return sorted(out, key=lambda m: (m["round"], m["step"]))


def dedupe_steps(rows: list[dict]) -> list[dict]:
    """Metric rows with each ``(stage, step)`` once — the last one logged wins (a resumed trainer
    logs the steps after its checkpoint again) — in step order; rows without a step are kept."""
    last: dict[tuple, dict] = {}
    loose = []
    for r in rows:
        if isinstance(r.get("step"), (int, float)):
            last[(r.get("stage", ""), r["step"])] = r
        else:
            loose.append(r)
    return loose + sorted(last.values(), key=lambda r: (str(r.get("stage", "")), r["step"]))


def _output(m: dict, name: str = "data") -> Path | None:
    o = m.get("outputs", {}).get(name)
    return Path(o["path"]) if o else None


def _output_records(m: dict, name: str = "data") -> list[dict]:
    """The records of a stage's output file; none when the stage declared no such output or it is gone."""
    p = _output(m, name)
    return read_records(p) if p is not None and p.is_file() else []


def collect(run_dir: Path) -> dict:
    """Everything the report shows, as plain data (also handy for tests and the terminal summary)."""
    mans = [m for m in _manifests(run_dir) if m.get("status") == "done"]
    metrics = dedupe_steps(read_metrics(run_dir / "metrics.jsonl"))
    data: dict = {"validation": [], "judge_scores": {}, "pairs": {}, "train_curves": {}, "rates": {},
                  "samples": [], "stages": [], "manifests": mans}
    for m in mans:
        tag = m["dir"].name
        data["stages"].append({"stage": tag, "status": m["status"], "seconds": m.get("seconds"),
                               "attempts": m.get("attempts")})
        kind, r = m["stage"], m["round"]
        if kind == "validate":
            data["validation"].append({"round": r, **m.get("metrics", {})})
        elif kind == "judge":
            recs = _output_records(m)
            data["judge_scores"][r] = [x["score"] for rec in recs for x in rec.get("responses", [])
                                       if x.get("score") is not None]
            mm = m.get("metrics", {})
            data["rates"].setdefault(r, {}).update(
                {k: mm[k] for k in ("parse_failure_rate", "tie_rate", "bad_ends_frac",
                                    "judge_check_agreement") if k in mm})
        elif kind == "pair":
            # meta pairs carry Elo θ, not judge scores: only the main pairs' scores are plotted
            pairs = [x for x in _output_records(m) if (x.get("meta") or {}).get("kind") != "meta_judge"]
            data["pairs"][r] = {
                "chosen": [x.get("chosen_score") for x in pairs if x.get("chosen_score") is not None],
                "rejected": [x.get("rejected_score") for x in pairs if x.get("rejected_score") is not None],
            }
            mm = m.get("metrics", {})
            data["rates"].setdefault(r, {}).update(
                {k: mm[k] for k in ("bad_samples_frac", "bad_ends_frac", "meta_pairs_made",
                                    "meta_pairs_used") if k in mm})
            for x in pairs[:3]:
                data["samples"].append({"round": r, **{k: x.get(k) for k in (
                    "prompt", "chosen", "rejected", "chosen_score", "rejected_score")}})
    by_stage = defaultdict(list)
    for rec in metrics:
        by_stage[rec.get("stage", "")].append(rec)
    hand_run = not mans  # a `selfalign train` output folder: every logged stage is a trainer
    for stage, recs in by_stage.items():
        if hand_run or any(k in stage for k in ("train", "sft", "-rm", "ppo", "dpo")):  # trainer stages
            data["train_curves"][stage or "train"] = recs
    return data


def _marker(points: list) -> dict:
    """Plot options that make a one-point series visible (a line needs two points)."""
    return {"marker": "o"} if len(points) == 1 else {}


def _hist_plot(judge_scores: dict) -> str | None:
    if not judge_scores:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    for r, scores in sorted(judge_scores.items()):
        if scores:
            ax.hist(scores, bins=20, alpha=0.5, label=f"iteration {r}")
    ax.set_xlabel("judge score")
    ax.set_ylabel("responses")
    ax.legend()
    ax.set_title("Judge score distribution per iteration")
    return _fig_to_uri(fig)


def _pairs_plot(pairs: dict, curves: dict) -> str | None:
    if not pairs and not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    rounds = sorted(pairs)
    for key, color in (("chosen", "tab:green"), ("rejected", "tab:red")):
        means = [sum(pairs[r][key]) / len(pairs[r][key]) if pairs[r][key] else float("nan") for r in rounds]
        axes[0].plot(rounds, means, "o-", color=color, label=key)
    from matplotlib.ticker import MaxNLocator

    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_xlabel("iteration")
    axes[0].set_ylabel("mean judge score")
    axes[0].set_title("Judge scores of chosen / rejected")
    axes[0].legend()
    for stage, recs in sorted(curves.items()):
        xs = [x["step"] for x in recs if "rewards_chosen_mean" in x]
        if xs:
            axes[1].plot(xs, [x["rewards_chosen_mean"] for x in recs if "rewards_chosen_mean" in x],
                         label=f"{stage} chosen", **_marker(xs))
            axes[1].plot(xs, [x["rewards_rejected_mean"] for x in recs if "rewards_chosen_mean" in x],
                         "--", label=f"{stage} rejected", **_marker(xs))
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("β·log(π/π_ref)")
    axes[1].set_title("Implicit rewards (β-scaled)")
    if axes[1].lines:
        axes[1].legend(fontsize=7)
    return _fig_to_uri(fig)


def _loss_plot(curves: dict) -> str | None:
    series = {s: [x for x in recs if "loss" in x] for s, recs in curves.items()}
    series = {s: v for s, v in series.items() if v}
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    for s, recs in sorted(series.items()):
        ax.plot([x["step"] for x in recs], [x["loss"] for x in recs], label=s, **_marker(recs))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title("Training loss")
    ax.legend(fontsize=7)
    return _fig_to_uri(fig)


def _rates_plot(rates: dict) -> str | None:
    if not rates:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for v in rates.values() for k in v if k.endswith(("_rate", "_frac"))})
    if not keys:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    rounds = sorted(rates)
    width = 0.8 / len(keys)
    for i, k in enumerate(keys):
        ax.bar([r + i * width for r in rounds], [rates[r].get(k, 0) for r in rounds], width, label=k)
    ax.set_xlabel("iteration")
    ax.set_ylabel("fraction")
    ax.set_title("Bad samples, bad ends, parse failures, ties")
    ax.legend(fontsize=7)
    return _fig_to_uri(fig)


def _validation_plot(validation: list[dict]) -> str | None:
    if not validation:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rate_keys = [k for k in ("verifiable_pass_rate", "loose_pass_rate", "check_pass_rate", "win_rate_vs_m0",
                             "cut_rate", "judge_check_correlation")
                 if any(v.get(k) is not None for v in validation)]
    judge_keys = [k for k in ("self_judge_mean",) if any(v.get(k) is not None for v in validation)]
    if not rate_keys and not judge_keys:
        return None
    from matplotlib.ticker import MaxNLocator

    panels = [(keys, title) for keys, title in ((rate_keys, "rates (0–1)"), (judge_keys, "self-judge score"))
              if keys]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.2), squeeze=False)
    for ax, (keys, title) in zip(axes[0], panels):
        for k in keys:
            pts = [(v["round"], v[k], v.get(k + "_ci")) for v in validation if v.get(k) is not None]
            line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=k)
            bars = [(x, y, ci) for x, y, ci in pts if isinstance(ci, list) and len(ci) == 2]
            if bars:  # 95% bootstrap intervals
                ax.errorbar([b[0] for b in bars], [b[1] for b in bars], fmt="none", capsize=3,
                            color=line.get_color(), alpha=0.6,
                            yerr=[[max(0.0, y - ci[0]) for _, y, ci in bars], [max(0.0, ci[1] - y) for _, y, ci in bars]])
            for x, y, _ in pts:
                ax.annotate(f"{y:.3g}", (x, y), textcoords="offset points", xytext=(0, 5), ha="center",
                            fontsize=6)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("model M_t (t = iterations of training)")
        ax.set_title(f"Held-out validation: {title}" + (" (bars: 95% bootstrap intervals)" if keys is rate_keys else ""))
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _fig_to_uri(fig)


def _table(rows: list[dict], cols: list[str] | None = None, trunc: int = 300) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    cols = cols or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            if isinstance(v, float):
                s = f"{v:.4g}"
            elif isinstance(v, (list, dict)):
                s = json.dumps(v, ensure_ascii=False)
            else:
                s = "" if v is None else str(v)
            if len(s) > trunc:
                s = s[:trunc] + "…"
            cells.append(f"<td>{html.escape(s)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;
vertical-align:top;text-align:left;white-space:pre-wrap}th{background:#f3f3f3}img{max-width:100%}
h2{border-bottom:1px solid #ddd;padding-bottom:4px}"""


def _rl_sections(data: dict, section) -> None:
    """Principle-judge health, reward-model checks and PPO curves, when the run has them."""
    from selfalign import report_rl as rl

    per, judge = rl.principle_health(data["manifests"])
    if per:
        section("Principle judge health", rl.health_plot(per), _table([judge]))
    rows = rl.rm_rows(data["manifests"])
    if rows:
        section("Principle-following reward model (held-out checks)", None, _table(rows))
    ppo = rl.ppo_curves(data["train_curves"])
    if ppo:
        section("PPO: reward, shaped score, KL, length", rl.ppo_plot(ppo))


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` for ``run_dir`` and return its path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SelfalignError(f"{run_dir}: not a run directory")
    if not (run_dir / "metrics.jsonl").is_file() and not any(
            (d / "manifest.json").is_file() for d in run_dir.iterdir() if d.is_dir()):
        raise SelfalignError(f"{run_dir}: no stage manifests and no metrics.jsonl found (is this a "
                             "selfalign run directory or a `selfalign train` output folder?)")
    data = collect(run_dir)
    parts = [f"<html><head><meta charset='utf-8'><title>selfalign report: {html.escape(run_dir.name)}"
             f"</title><style>{_CSS}</style></head><body>",
             f"<h1>selfalign run report — {html.escape(run_dir.name)}</h1>"]

    def section(title: str, img: str | None, extra: str = ""):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(f"<img src='{img}'/>" if img else ("" if extra else "<p><em>no data</em></p>"))
        parts.append(extra)

    section("Validation across iterations", _validation_plot(data["validation"]),
            _table(data["validation"]))
    section("Judge score distributions", _hist_plot(data["judge_scores"]))
    section("Chosen / rejected: judge scores and implicit rewards",
            _pairs_plot(data["pairs"], data["train_curves"]))
    section("Loss curves", _loss_plot(data["train_curves"]))
    rate_rows = [{"iteration": r, **v} for r, v in sorted(data["rates"].items())]
    section("Bad samples and parse failures", _rates_plot(data["rates"]), _table(rate_rows))
    _rl_sections(data, section)
    parts.append("<h2>Sample pairs</h2>")
    parts.append(_table(data["samples"], ["round", "prompt", "chosen", "rejected", "chosen_score",
                                          "rejected_score"]))
    parts.append("<h2>Stages</h2>")
    parts.append(_table(data["stages"]))
    parts.append("</body></html>")
    out = Path(out) if out else run_dir / "report.html"
    write_text_atomic(out, "\n".join(parts))
    return out
