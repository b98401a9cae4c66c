"""Prompt/completion split on token ids with the real SmolLM2 tokenizer and chat template."""

from __future__ import annotations

import copy
import warnings

import pytest

from selfalign.data.chat import (
    ChatTemplateWarning,
    encode_prompt,
    encode_prompt_completion,
    render_for_generation,
    render_prompt,
)
from selfalign.errors import ModelError


def U(text):
    return {"role": "user", "content": text}


def A(text):
    return {"role": "assistant", "content": text}


def full_ids(tok, messages):
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    return tok(text, add_special_tokens=False)["input_ids"]


def test_render_prompt_wraps_string_as_user_message(tokenizer):
    text = render_prompt(tokenizer, "What is 2+2?")
    assert text == tokenizer.apply_chat_template([U("What is 2+2?")], tokenize=False,
                                                 add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")
    assert render_prompt(tokenizer, [U("What is 2+2?")]) == text
    assert tokenizer.decode(encode_prompt(tokenizer, "What is 2+2?")) == text


@pytest.mark.parametrize("prompt", ["What is 2+2?", [{"role": "system", "content": "Be terse."}, U("2+2?")]])
@pytest.mark.parametrize("answer", ["4", "The answer is 4.\nDone!  ", "Ünïcode ✓ 😀"])
def test_split_matches_full_conversation(tokenizer, prompt, answer):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChatTemplateWarning)
        p, c = encode_prompt_completion(tokenizer, prompt, answer)
    msgs = ([U(prompt)] if isinstance(prompt, str) else prompt) + [A(answer)]
    full = full_ids(tokenizer, msgs)
    # the template adds "\n" after <|im_end|>: the completion stops at the end-of-turn token
    assert p + c == full[: len(p) + len(c)]
    assert full[len(p) + len(c):] == tokenizer("\n", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(c) == answer + "<|im_end|>"
    assert c.count(tokenizer.eos_token_id) == 1 and c[-1] == tokenizer.eos_token_id
    assert p == encode_prompt(tokenizer, prompt)


def test_leading_whitespace_answer_uses_fallback(tokenizer):
    """"\n" + "  x" merges into one BPE token in the full text: the prefix breaks, the answer is
    tokenized after the prompt exactly as generation would have produced it."""
    tok = copy.deepcopy(tokenizer)
    with pytest.warns(ChatTemplateWarning):
        p, c = encode_prompt_completion(tok, "Hi", "  spaced answer")
    assert p == encode_prompt(tok, "Hi")
    assert c == tok("  spaced answer", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert tok.decode(c) == "  spaced answer<|im_end|>"


def test_eos_exactly_once_and_add_eos_false(tokenizer):
    _, c1 = encode_prompt_completion(tokenizer, "Hi", "Hello<|im_end|>")
    _, c2 = encode_prompt_completion(tokenizer, "Hi", "Hello")
    assert c1 == c2 and c1.count(tokenizer.eos_token_id) == 1
    _, c3 = encode_prompt_completion(tokenizer, "Hi", "Hello", add_eos=False)
    assert c3 == c2[:-1] and tokenizer.decode(c3) == "Hello"


def test_conversational_multi_turn_completion(tokenizer):
    prompt = [U("Hi")]
    completion = [A("Hello!"), U("Capital of France?"), A("Paris.")]
    p, c = encode_prompt_completion(tokenizer, prompt, completion)
    full = full_ids(tokenizer, prompt + completion)
    assert p + c == full[:-1]  # all but the trailing newline
    assert tokenizer.decode(c).endswith("Paris.<|im_end|>")
    assert c.count(tokenizer.eos_token_id) == 3


@pytest.fixture
def broken_tokenizer(tokenizer):
    """A copy whose template rewrites the last user turn unless a generation prompt is asked for."""
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = (
        "{% for m in messages %}"
        "{% if m['role'] == 'user' and not add_generation_prompt %}"
        "{{ '<|im_start|>user\\n[answered] ' + m['content'] + '<|im_end|>\\n' }}"
        "{% else %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    return tok


def test_prefix_break_warns_once_and_falls_back(broken_tokenizer):
    tok = broken_tokenizer
    with pytest.warns(ChatTemplateWarning, match="token prefix"):
        p, c = encode_prompt_completion(tok, "What is 2+2?", "4")
    assert tok.decode(p) == "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    assert c == tok("4", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChatTemplateWarning)  # second call: no second warning
        p2, c2 = encode_prompt_completion(tok, "Another?", "Yes")
    assert tok.decode(c2) == "Yes<|im_end|>"
    _, c3 = encode_prompt_completion(tok, "Another?", "Yes", add_eos=False)
    assert tok.decode(c3) == "Yes"


def test_plain_tokenizer_without_template(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = None
    assert render_prompt(tok, "Q: 2+2?\nA:") == "Q: 2+2?\nA:"
    assert render_prompt(tok, [U("Q")]) == "Q"
    p, c = encode_prompt_completion(tok, "Q: 2+2?\nA:", " 4")
    assert tok.decode(p) == "Q: 2+2?\nA:" and tok.decode(c) == " 4<|im_end|>"
    with pytest.raises(ModelError, match="no chat template"):
        render_prompt(tok, [U("a"), A("b"), U("c")])


def test_render_for_generation(tokenizer):
    text, special = render_for_generation(tokenizer, "Hi", system_prompt="Be brief.")
    assert not special and text == render_prompt(tokenizer, [{"role": "system", "content": "Be brief."}, U("Hi")])
    assert render_for_generation(tokenizer, [U("Hi")]) == (render_prompt(tokenizer, "Hi"), False)
    assert render_for_generation(tokenizer, "Hi", chat_template=False) == ("Hi", True)
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = None
    assert render_for_generation(tok, "Hi", system_prompt="S") == ("S\n\nHi", True)
    assert render_for_generation(tok, [U("a"), A("b"), U("c")]) == ("user: a\nassistant: b\nuser: c\nassistant:", True)
