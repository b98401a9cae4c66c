"""The principle-following reward model's inputs (reviewer text split, RM records, RL-time principles),
its checks (held-out accuracy, negation flips) on a hand-made scorer, and SALMON's reward shaping."""

from __future__ import annotations

import pytest
import torch

from selfalign.principle_rm import RLReviewer, reviewer_parts, rm_checks, rm_pair_records
from selfalign.principles import Principle, load_principles
from selfalign.train.config import LengthRatioBonus, ReviewerConfig
from selfalign.train.rl_losses import length_ratio_bonus, shape_scores

P = [Principle(name="Brief", definition="The output is brief.", negative_definition="The output is long."),
     Principle(name="Kind", definition="The output is kind.", negative_definition="The output is unkind.")]


def _example(pref="a", principle="Brief", negated=False):
    return {"id": "x#p0", "source_id": "x", "instruction": "Say hi.", "response_a": "Hi!",
            "response_b": "Hello there, my dear friend, how are you today?", "preferred": pref,
            "principles": [{"name": principle, "negated": negated}], "label_source": "principle",
            "label_principle": principle}


def test_reviewer_parts_share_a_prefix_and_end_with_the_verdict_opening(tokenizer):
    pa, a = reviewer_parts(tokenizer, "Say hi.", "Hi!", ["The output is brief."])
    pb, b = reviewer_parts(tokenizer, "Say hi.", "Hello {x}", ["The output is brief."])
    assert pa == pb and "Say hi." in pa and "<|im_start|>user" in pa
    assert a.startswith("Hi!") and b.startswith("Hello {x}")
    assert a.endswith("The quality of the output is") and "- The output is brief." in a
    assert "Brief" not in pa + a  # definitions only, no names


def test_rm_records_put_the_label_on_the_right_side_and_show_negations(tokenizer):
    recs = rm_pair_records([_example("b", negated=True)], P, tokenizer)
    r = recs[0]
    assert r["chosen"].startswith("Hello there") and r["rejected"].startswith("Hi!")
    assert "The output is long." in r["chosen"] and "The output is brief." not in r["chosen"]
    assert r["meta"]["principles"] == [{"name": "Brief", "negated": True}]


def test_train_and_score_encode_the_reviewer_text_identically(tokenizer):
    """train rm (chat_template: false) and the PPO source tokenise (prefix, response + suffix) the same."""
    from selfalign.data.chat import encode_prompt_completion

    prefix, rest = reviewer_parts(tokenizer, "Say hi.", "Hi!", ["The output is brief."])
    p, c = encode_prompt_completion(tokenizer, prefix, rest, chat_template=False)
    ids = tokenizer(prefix + rest, add_special_tokens=False)["input_ids"]
    assert p + c[:-1] == ids and c[-1] == tokenizer.eos_token_id
    im_start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert p.count(im_start) >= 2  # special-token strings stay special tokens


class _FakeRM:
    """Reward = +1 per bullet that the response "satisfies": short answers satisfy "brief", long ones "long"."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.calls = 0

    def score(self, items, batch_size=8, max_length=None, chat_template=True):
        assert chat_template is False
        self.calls += 1
        out = []
        for _prefix, rest in items:
            short = len(rest.split("\n")[0]) < 10
            out.append((1.0 if short else -1.0) * (1.0 if "is brief" in rest else -1.0 if "is long" in rest else 0))
        return out


def test_rm_checks_count_accuracy_and_negation_flips(tokenizer):
    ex = [_example("a"), _example("b"), _example("b", negated=True)]
    m = rm_checks(_FakeRM(tokenizer), ex, P)
    # under "brief" the RM prefers a (short); under "long" it prefers b
    assert m["rm_heldout_acc"] == pytest.approx(2 / 3)  # example 2's label disagrees
    assert m["rm_negation_examples"] == 3 and m["rm_negation_flip_rate"] == 1.0
    assert m["rm_negation_follow_rate"] == pytest.approx(2 / 3)


def test_rl_reviewer_lists_intervention_first_and_is_seeded_per_prompt(tokenizer):
    rev = RLReviewer(ReviewerConfig(num_sampled=3), tokenizer)
    inter = [p.definition for p in load_principles("intervention")]
    rec = {"id": "q1", "prompt": "What is 2+2?", "meta": {"kind": "reasoning"}}
    d1, d2 = rev.definitions(rec), rev.definitions(dict(rec))
    assert d1 == d2 and d1[:3] == inter and len(d1) == 6 and len(set(d1)) == 6
    others = {tuple(rev.definitions({"id": f"q{i}", "prompt": "x"})) for i in range(20)}
    assert len(others) > 1
    items = rev.items([rec, rec], ["4", "four"])
    assert items[0][0] == items[1][0] and items[0][1].startswith("4")


def test_salmon_length_bonus_by_hand():
    lengths = torch.tensor([32, 64, 16, 64])
    m = torch.tensor([1.0, 1.0, -0.4, -0.4])
    got = length_ratio_bonus(lengths, m, max_new_tokens=64, cap=0.8, scale=5.0)
    # 5·min(0.5, 0.8) = 2.5; 5·min(1, 0.8) = 4; 5·(−0.1) = −0.5; 5·(−0.4) = −2
    assert got.tolist() == pytest.approx([2.5, 4.0, -0.5, -2.0])
    lb = LengthRatioBonus()
    assert lb.multiplier({"kind": "reasoning"}) == -0.4 and lb.multiplier({"kind": "poetry"}) == 1.0
    assert lb.multiplier(None) == 1.0


def test_salmon_shaping_order_by_hand():
    raw = torch.tensor([0.3, 0.3, -0.2])
    finished = torch.tensor([True, False, True])
    lengths = torch.tensor([10, 64, 20])
    bonus = torch.tensor([0.5, 4.0, -0.25])
    s = shape_scores(raw, finished, lengths, scale=10.0, no_stop_score=-6.0, ratio_bonus=bonus)
    # finished: 10·(raw + bonus); unfinished: −6 replaces the score
    assert s.tolist() == pytest.approx([8.0, -6.0, -4.5])


def test_reviewer_is_only_for_reward_models_and_ppo_keeps_the_chat_template():
    from pydantic import ValidationError

    from selfalign.train.config import PPOConfig, RewardSourceConfig

    with pytest.raises(ValidationError, match="only for type reward_model"):
        RewardSourceConfig(type="function", function="verifiable", reviewer={})
    with pytest.raises(ValidationError, match="chat_template"):
        PPOConfig(model="m", train_file="f", output_dir="o", chat_template=False,
                  rewards=[{"type": "function", "function": "verifiable"}])
