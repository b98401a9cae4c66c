"""Model resolution and loading: registry names, local folders, hub ids (offline errors)."""

from __future__ import annotations

import pytest
import torch

from selfalign.errors import ModelError
from selfalign.models.load import load_causal_lm, load_tokenizer, resolve_model


def test_local_folder_roundtrip(tiny_model):
    m = load_causal_lm(tiny_model)
    tok = load_tokenizer(tiny_model)
    assert tok.padding_side == "left" and tok.pad_token is not None
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    ids = tok("hello world", return_tensors="pt").input_ids
    with torch.no_grad():
        assert m(ids).logits.shape == (1, ids.shape[1], len(tok))


def test_unreadable_folder_and_unknown_spec(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(tmp_path / "empty")
    with pytest.raises(ModelError, match="offline alternatives"):
        resolve_model("not a model")
    f = tmp_path / "file.bin"
    f.write_text("x")
    with pytest.raises(ModelError, match="not a model folder"):
        resolve_model(f)


def test_hub_id_offline_gives_one_line_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model("some-org/some-model") == "some-org/some-model"
    with pytest.raises(ModelError, match="offline alternatives") as e:
        load_tokenizer("some-org/some-model-that-does-not-exist")
    assert "\n" not in str(e.value)


def test_registry_and_home_override(monkeypatch, tmp_path):
    from selfalign.models.registry import REGISTRY, is_prepared, prepared_dir, selfalign_home

    assert "smollm2-135m" in REGISTRY
    monkeypatch.setenv("SELFALIGN_HOME", str(tmp_path / "home"))
    assert selfalign_home() == tmp_path / "home"
    assert prepared_dir("smollm2-135m") == tmp_path / "home" / "models" / "smollm2-135m"
    assert not is_prepared("smollm2-135m")
    with pytest.raises(ModelError, match="is not prepared"):
        resolve_model("smollm2-135m", prepare=False)


@pytest.mark.slow
def test_embedded_model_answers_coherently():
    """`selfalign models prepare smollm2-135m` then a chat prompt gives a coherent answer."""
    import subprocess
    import sys

    from selfalign.models.load import prepare_registry_model

    prepare_registry_model("smollm2-135m")
    out = subprocess.run([sys.executable, "-m", "selfalign", "models", "chat",
                          "What is the capital of France?", "--max-new-tokens", "30"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Paris" in out.stdout


def test_padded_batches_left_right_and_order():
    from selfalign.models.batching import pad_batch, padded_batches

    seqs = [[1], [2, 3, 4], [5, 6]]
    ids, mask = pad_batch(seqs, 0, left=True)
    assert ids.tolist() == [[0, 0, 1], [2, 3, 4], [0, 5, 6]] and mask.sum(-1).tolist() == [1, 3, 2]
    ids, mask = pad_batch(seqs, 9, left=False)
    assert ids.tolist() == [[1, 9, 9], [2, 3, 4], [5, 6, 9]] and mask.tolist()[0] == [1, 0, 0]
    batches = list(padded_batches(seqs, 2, 0))  # longest first
    assert [b[0] for b in batches] == [[1, 2], [0]] and batches[0][1].tolist() == [[2, 3, 4], [0, 5, 6]]
    batches = list(padded_batches(seqs, 2, 0, left=False, longest_first=False))
    assert [b[0] for b in batches] == [[0, 2], [1]] and batches[0][1].tolist() == [[1, 0], [5, 6]]
