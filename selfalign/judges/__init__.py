"""Judges score candidate responses: rubric (LLM-as-a-judge), pairwise_principle (SALMON),
reward_model (scalar RM), function (programmatic / verifiable checks) and meta (meta-judge).

``build_judge({"type": "rubric", ...})`` imports only the judge asked for.
"""

from selfalign.judges.base import (
    JUDGE_MODULES,
    Judge,
    JudgeConfig,
    build_judge,
    mean_var,
    parse_judge_config,
    register_judge,
    response_text,
    with_scores,
)
from selfalign.judges.stats import JudgeStats

__all__ = ["JUDGE_MODULES", "Judge", "JudgeConfig", "JudgeStats", "build_judge", "mean_var",
           "parse_judge_config", "register_judge", "response_text", "with_scores"]
