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
``tabular_``   —                                            :class:`TabularPrepareStageConfig` (SynFed)
``prepare``
``tabular_``   candidates, table                            :class:`TabularRowsStageConfig` (SynFed)
``rows``
``tabular_``   model, candidates, table, anchors,           :class:`TabularScoreStageConfig` (SynFed)
``score``      adapter_*?
``tabular_``   groups_*                                     :class:`TabularPairsStageConfig` (SynFed)
``pairs``
``tabular_``   test, rows_*, table_*                        :class:`TabularQualityStageConfig` (SynFed)
``quality``
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
from selfalign.stages.tabular_pairs import TabularPairsStageConfig
from selfalign.stages.tabular_prepare import TabularPrepareStageConfig
from selfalign.stages.tabular_quality import TabularQualityStageConfig
from selfalign.stages.tabular_rows import TabularRowsStageConfig
from selfalign.stages.tabular_score import TabularScoreStageConfig
from selfalign.stages.train import TrainStageConfig
from selfalign.stages.validate import ValidateStageConfig

__all__ = ["STAGES", "AggregateStageConfig", "GenerateStageConfig", "RMCheckStageConfig", "JudgeStageConfig", "PairStageConfig", "TabularPairsStageConfig", "TabularPrepareStageConfig", "TabularQualityStageConfig",
           "TabularRowsStageConfig", "TabularScoreStageConfig", "TrainStageConfig",
           "ValidateStageConfig", "get_stage", "run_stage", "stage"]
