"""Generation: prompts → N sampled responses each (``Engine`` protocol, ``hf`` backend, resumable
sharded output). ``from selfalign.generation import build_engine, generate_records, SamplingParams``.
"""

from selfalign.generation.engine import (
    Engine,
    EngineConfig,
    GenerateConfig,
    SamplingParams,
    build_engine,
    generate_records,
    generate_to_file,
    generation_summary,
)

__all__ = ["Engine", "EngineConfig", "GenerateConfig", "SamplingParams", "build_engine",
           "generate_records", "generate_to_file", "generation_summary"]
