"""Report sections for principle judges, reward-model checks and PPO (used by :mod:`selfalign.report`).

* judge health — per-principle position consistency (the ``aggregate`` stage's ``consistency/<name>``)
  with the judge's probability mass on its label tokens;
* reward-model checks — the ``rm_check`` stage's held-out accuracy and negation flip rates, plus the
  RM trainer's own accuracy;
* PPO curves — per step: raw reward, shaped score, KL to the reference, response length.
"""

from __future__ import annotations

from typing import Any

PPO_SERIES = (("reward_raw_mean", "raw reward (RM)"), ("score_mean", "shaped score"), ("kl", "KL to reference"),
              ("response_length", "response tokens"))


def principle_health(manifests: list[dict]) -> tuple[dict[str, float], dict[str, Any]]:
    """``({principle: consistency}, {judge metric: value})`` from the last aggregate / judge stages."""
    per: dict[str, float] = {}
    judge: dict[str, Any] = {}
    for m in manifests:
        mm = m.get("metrics", {})
        if m["stage"] == "aggregate":
            per = {k.split("/", 1)[1]: v for k, v in mm.items() if k.startswith("consistency/")}
        elif m["stage"] == "judge" and "position_consistency" in mm:
            judge = {k: mm[k] for k in ("position_consistency", "label_mass_mean", "comparisons") if k in mm}
    return per, judge


def rm_rows(manifests: list[dict]) -> list[dict]:
    """One row per ``rm_check`` stage (and the accuracy of the RM trainer of the same round)."""
    train_acc = {m["round"]: m.get("metrics", {}).get("acc") for m in manifests if m["stage"] == "rm"}
    return [{"round": m["round"], "rm_train_acc": train_acc.get(m["round"]), **m.get("metrics", {})}
            for m in manifests if m["stage"] == "rm_check"]


def ppo_curves(curves: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The metric records of PPO stages (those logging ``reward_raw_mean``)."""
    return {s: [r for r in recs if "reward_raw_mean" in r] for s, recs in curves.items()
            if any("reward_raw_mean" in r for r in recs)}


def health_plot(per: dict[str, float]) -> str | None:
    if not per:
        return None
    from selfalign.plots import fig_to_uri as _fig_to_uri
    from selfalign.plots import pyplot

    plt = pyplot()
    names = sorted(per, key=per.get)
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(names) + 1))
    ax.barh(names, [per[n] for n in names], color="#4c72b0")
    ax.set_xlim(0, 1)
    ax.set_xlabel("position consistency (both orders agree)")
    ax.set_title("Principle judge health")
    ax.tick_params(axis="y", labelsize=7)
    return _fig_to_uri(fig)


def ppo_plot(series: dict[str, list[dict]]) -> str | None:
    if not series:
        return None
    from selfalign.plots import fig_to_uri as _fig_to_uri
    from selfalign.plots import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, len(PPO_SERIES), figsize=(12, 3))
    for ax, (key, title) in zip(axes, PPO_SERIES):
        for stage, recs in sorted(series.items()):
            pts = [(r["step"], r[key]) for r in recs if key in r]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o" if len(pts) == 1 else None, label=stage)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("PPO step", fontsize=8)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return _fig_to_uri(fig)
