"""Shared fixtures: tiny random models with the real SmolLM2 tokenizer (built once per session)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("SELFALIGN_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` are skipped when CUDA is not available (CI never needs a GPU)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (run on a GPU machine: scripts/gpu_check.sh)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Path of a tiny random Llama causal LM folder (hidden 64, 2 layers) + SmolLM2 tokenizer."""
    from selfalign.models.tiny import tiny_model_dir

    return tiny_model_dir(tmp_path_factory.mktemp("tiny_lm"))


@pytest.fixture(scope="session")
def tiny_seq_cls(tmp_path_factory):
    """Path of a tiny random LlamaForSequenceClassification (1 label) + SmolLM2 tokenizer."""
    from selfalign.models.tiny import tiny_seq_cls_dir

    return tiny_seq_cls_dir(tmp_path_factory.mktemp("tiny_cls"))


@pytest.fixture(scope="session")
def tokenizer(tiny_model):
    from selfalign.models.load import load_tokenizer

    return load_tokenizer(tiny_model)


@pytest.fixture(scope="module")
def patients():
    """An 8-row table (age, bmi, sex → outcome yes/no) for the SynFed tests."""
    import pandas as pd

    from selfalign.tabular.tables import table_from_frame

    frame = pd.DataFrame({
        "age": [23, 35, 47, 51, 62, 29, 44, 38],
        "bmi": [21.5, 30.1, 25.0, 27.3, 22.2, 24.8, 31.0, 26.4],
        "sex": ["female", "male"] * 4,
        "outcome": ["no", "yes", "yes", "no", "yes", "no", "no", "yes"],
    })
    return table_from_frame(frame, "outcome", name="patients")
