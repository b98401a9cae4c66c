"""Stages shared by every recipe: each reads named inputs (files or model folders), writes its
outputs into its own stage directory, and is cached by its resolved config and its inputs' content.

=============  ===========================================  =====================================
stage          inputs                                       config (schema)
=============  ===========================================  =====================================
``generate``   model, prompts                               :class:`GenerateStageConfig`
``judge``      candidates, policy?, base?                   :class:`JudgeStageConfig`
``pair``       scored, policy? (meta-judge)                 :class:`PairStageConfig`
``train``      model, data, reward_model?                   :class:`TrainStageConfig` (any trainer)
``validate``   model, heldout, base?, base_answers?         :class:`ValidateStageConfig`
``aggregate``  scored, model (tokenizer)                    :class:`AggregateStageConfig` (SALMON)
``rm_check``   model (reward model), examples               :class:`RMCheckStageConfig` (SALMON)
=============  ===========================================  =====================================

A recipe runs them with :func:`run_stage`; its config sections are made from these schemas with
:func:`selfalign.stages.sections.derive_section` (one home per setting).
"""

from selfalign.stages.aggregate import AggregateStageConfig
from selfalign.stages.base import STAGES, get_stage, run_stage, stage
from selfalign.stages.generate import GenerateStageConfig
from selfalign.stages.judge import JudgeStageConfig
from selfalign.stages.pair import PairStageConfig
from selfalign.stages.rm_check import RMCheckStageConfig
from selfalign.stages.train import TrainStageConfig
from selfalign.stages.validate import ValidateStageConfig

__all__ = ["STAGES", "AggregateStageConfig", "GenerateStageConfig", "RMCheckStageConfig", "JudgeStageConfig", "PairStageConfig", "TrainStageConfig",
           "ValidateStageConfig", "get_stage", "run_stage", "stage"]
