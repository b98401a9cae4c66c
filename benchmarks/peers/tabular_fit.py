"""The tabular peers of SynFed, each fitted on a real training frame and sampled: SDV 2.x
``GaussianCopulaSynthesizer`` and ``CTGANSynthesizer``, and GReaT (``be-great``, an LLM fine-tuned on
"column is value" sentences). Runs in the peers' own venv (``benchmarks/peers/tabular_venv.sh``);
:mod:`benchmarks.tabular_peers` calls :func:`fit_and_sample`.

Every fitter gets the real training rows as a frame and our schema (which columns are categorical)
and returns ``(synthetic_frame, info)``; ``info`` holds the settings and, for GReaT, the
generation counts (texts generated, texts that named every column).
"""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
import pandas as pd


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (SDV and GReaT use them)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def sdv_metadata(frame: pd.DataFrame, categorical: list[str], name: str) -> Any:
    """SDV ``Metadata`` with our schema's types (not SDV's own detection, so every method sees the
    same categorical / numerical split)."""
    from sdv.metadata import Metadata

    cols = {c: {"sdtype": "categorical"} if c in categorical else {"sdtype": "numerical"} for c in frame.columns}
    return Metadata.load_from_dict({"tables": {name: {"columns": cols}}})


def fit_gaussian_copula(frame: pd.DataFrame, categorical: list[str], n: int, seed: int,
                        **_: Any) -> tuple[pd.DataFrame, dict]:
    """SDV ``GaussianCopulaSynthesizer`` with its defaults (beta / normal / ... marginals chosen
    per column by SDV's default ``default_distribution='beta'``)."""
    from sdv.single_table import GaussianCopulaSynthesizer

    seed_everything(seed)
    synth = GaussianCopulaSynthesizer(sdv_metadata(frame, categorical, "real"))
    synth.fit({"real": frame})  # SDV 2.x: data and samples are {table name: frame}
    return synth.sample(num_rows=n)["real"], {"synthesizer": "GaussianCopulaSynthesizer", "defaults": True}


def fit_ctgan(frame: pd.DataFrame, categorical: list[str], n: int, seed: int, ctgan_epochs: int = 300,
              **_: Any) -> tuple[pd.DataFrame, dict]:
    """SDV ``CTGANSynthesizer`` (defaults: batch 500, pac 10, lr 2e-4) for ``ctgan_epochs`` epochs on CPU."""
    from sdv.single_table import CTGANSynthesizer

    seed_everything(seed)
    synth = CTGANSynthesizer(sdv_metadata(frame, categorical, "real"), epochs=ctgan_epochs, enable_gpu=False)
    synth.fit({"real": frame})
    return synth.sample(num_rows=n)["real"], {"synthesizer": "CTGANSynthesizer", "epochs": ctgan_epochs}


class _TextCounter:
    """Wraps be-great's text → row parser to count generated texts and those naming every column
    (the others become rows with a placeholder, which GReaT drops)."""

    def __init__(self, parse: Any):
        self.parse, self.texts, self.complete = parse, 0, 0

    def __call__(self, text: list[str], columns: list[str]) -> pd.DataFrame:
        df = self.parse(text, columns)
        self.texts += len(text)
        self.complete += int((~(df == "placeholder").any(axis=1)).sum())
        return df


def fit_great(frame: pd.DataFrame, categorical: list[str], n: int, seed: int, model: str = "",
              great_epochs: int = 5, great_batch: int = 8, great_lr: float = 5e-5, great_max_length: int = 128,
              great_workdir: str = "/tmp/great", **_: Any) -> tuple[pd.DataFrame, dict]:
    """GReaT (``be_great.GReaT``) from the local HF folder ``model``: full fine-tuning for
    ``great_epochs`` epochs (HF Trainer, AdamW, lr ``great_lr``, batch ``great_batch``, no
    checkpoints), then ``n`` rows by its default (non-guided) sampler at temperature 0.7."""
    import be_great.great as bg
    from be_great import GReaT

    seed_everything(seed)
    t0 = time.perf_counter()
    great = GReaT(llm=model, experiment_dir=great_workdir, epochs=great_epochs, batch_size=great_batch,
                  learning_rate=great_lr, save_strategy="no", logging_steps=10, seed=seed, use_cpu=True)
    trainer = great.fit(frame)
    fit_s = time.perf_counter() - t0
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    counter = _TextCounter(bg._convert_text_to_tabular_data)
    bg._convert_text_to_tabular_data = counter
    try:
        t1 = time.perf_counter()
        syn = great.sample(n_samples=n, k=min(n, 64), max_length=great_max_length, device="cpu")
        sample_s = time.perf_counter() - t1
    finally:
        bg._convert_text_to_tabular_data = counter.parse
    info = {"model": model, "epochs": great_epochs, "batch_size": great_batch, "learning_rate": great_lr,
            "max_length": great_max_length, "steps": int(trainer.state.global_step),
            "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
            "fit_s": fit_s, "sample_s": sample_s, "texts_generated": counter.texts,
            "texts_complete": counter.complete, "rows_returned": int(len(syn))}
    return syn, info


FITTERS = {"gaussian_copula": fit_gaussian_copula, "ctgan": fit_ctgan, "great": fit_great}


def fit_and_sample(method: str, frame: pd.DataFrame, categorical: list[str], n: int, seed: int,
                   **options: Any) -> tuple[pd.DataFrame, dict]:
    """Fit peer ``method`` (a key of :data:`FITTERS`) on ``frame`` and draw ``n`` rows; ``info``
    gets ``wall_s`` (fit + sample, seconds)."""
    t0 = time.perf_counter()
    syn, info = FITTERS[method](frame, categorical, n, seed, **options)
    info["wall_s"] = time.perf_counter() - t0
    return syn.reset_index(drop=True), info
