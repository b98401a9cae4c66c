"""Generation: prompts → N sampled responses each (``Engine`` protocol, ``hf`` backend, resumable
sharded output). ``from selfalign.generation import build_engine, generate_records, SamplingParams``.
"""

from selfalign.generation.engine import (
    Engine,
    EngineConfig,
    EngineOptions,
    GenerateConfig,
    build_engine,
    generate_records,
    generate_to_file,
    generation_summary,
)
from selfalign.generation.sampling import Prompt, SamplingParams

__all__ = ["Engine", "EngineConfig", "EngineOptions", "GenerateConfig", "Prompt", "SamplingParams",
           "build_engine", "generate_records", "generate_to_file", "generation_summary"]
