"""Chat templating and the prompt/completion split, done on token ids.

Training on a (prompt, completion) pair needs the completion's tokens exactly as they follow the
prompt the model saw at generation time. We therefore render

* the prompt with the chat template and the generation prompt (``<|im_start|>assistant\\n``), and
* the full conversation (prompt messages + the assistant answer) with the same template,

tokenize both and take the completion as the full conversation's ids *after* the prompt's ids —
never by slicing strings. The completion ends with the template's end-of-turn token (``<|im_end|>``
for SmolLM2) exactly once; anything the template puts after it (a newline) is dropped, since
generation stops at that token.

Some templates render the last turns differently when no generation prompt is asked for (e.g. they
drop reasoning or reformat the final user turn), and an answer starting with whitespace can merge
with the template's newline into one BPE token; then the prompt ids are not a prefix of the
full ids. Then we warn once per tokenizer and fall back to ``prompt_ids`` + the completion text
tokenized on its own + EOS.
"""

from __future__ import annotations

import warnings
import weakref
from typing import Any

from selfalign.errors import ModelError

__all__ = [
    "ChatTemplateWarning",
    "as_messages",
    "encode_prompt",
    "encode_prompt_completion",
    "has_chat_template",
    "is_rendered",
    "render_chat",
    "render_for_generation",
    "render_prompt",
]

Messages = list[dict[str, Any]]


class ChatTemplateWarning(UserWarning):
    """The chat template breaks the prompt-is-a-token-prefix property; a fallback is used."""


_warned_refs: weakref.WeakSet = weakref.WeakSet()
_warned_ids: set[int] = set()  # for tokenizers that cannot be weakly referenced


def _warn_once(tokenizer: Any, message: str) -> None:
    try:
        if tokenizer in _warned_refs:
            return
        _warned_refs.add(tokenizer)
    except TypeError:
        if id(tokenizer) in _warned_ids:
            return
        _warned_ids.add(id(tokenizer))
    warnings.warn(message, ChatTemplateWarning, stacklevel=3)


def has_chat_template(tokenizer: Any) -> bool:
    """True when the tokenizer carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


#: Turn markers of common chat templates (ChatML, Llama 3, Gemma, Zephyr, Mistral).
TEMPLATE_MARKERS = ("<|im_start|>", "<|begin_of_text|>", "<|start_header_id|>", "<start_of_turn>",
                    "<|system|>", "<|user|>", "[INST]")


def is_rendered(tokenizer: Any, prompt: Any) -> bool:
    """True for a string prompt that already carries a chat template: after leading whitespace it
    starts with a known turn marker (:data:`TEMPLATE_MARKERS`) or with one of the tokenizer's
    special-token strings of 3+ characters (BOS, EOS/end-of-turn, additional special tokens).

    Example: ``is_rendered(tok, "<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n")`` → True
    """
    if not isinstance(prompt, str):
        return False
    specials = [t for t in (getattr(tokenizer, "all_special_tokens", None) or [])
                if isinstance(t, str) and len(t) >= 3]
    return prompt.lstrip().startswith((*TEMPLATE_MARKERS, *specials))


def as_messages(prompt: str | Messages, system_prompt: str | None = None) -> Messages:
    """A string prompt as one user message, a message list as a new list of the same messages;
    with ``system_prompt``, a system turn goes first unless the messages start with one."""
    msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if system_prompt and not (msgs and msgs[0].get("role") == "system"):
        msgs = [{"role": "system", "content": system_prompt}, *msgs]
    return msgs


def render_chat(tokenizer: Any, messages: Messages, add_generation_prompt: bool) -> str:
    """Apply the tokenizer's chat template to ``messages`` and return the text."""
    if not has_chat_template(tokenizer):
        raise ModelError("the tokenizer has no chat template; use plain-text prompts or a chat model")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def render_continuation(tokenizer: Any, messages: Messages) -> str:
    """The chat-template text of ``messages`` with the last (assistant) turn left open, so the model
    continues it (``continue_final_message``); without a template, the contents joined by blank lines."""
    if not has_chat_template(tokenizer):
        return "\n\n".join(str(m["content"]) for m in messages)
    return tokenizer.apply_chat_template(messages, tokenize=False, continue_final_message=True)


def render_prompt(tokenizer: Any, prompt: str | Messages) -> str:
    """The text the model sees before it answers: chat template + generation prompt.

    A plain string is wrapped as one user message when the tokenizer has a chat template and is
    returned unchanged when it has none (base models) or already carries a template
    (:func:`is_rendered`).

    Example: ``render_prompt(tok, "Hi")`` → ``'<|im_start|>system\\n...<|im_start|>assistant\\n'``
    """
    if isinstance(prompt, str) and (not has_chat_template(tokenizer) or is_rendered(tokenizer, prompt)):
        return prompt
    if not has_chat_template(tokenizer) and len(prompt) == 1 and prompt[0]["role"] == "user":
        return prompt[0]["content"]
    return render_chat(tokenizer, as_messages(prompt), add_generation_prompt=True)


def render_for_generation(tokenizer: Any, prompt: str | Messages, system_prompt: str | None = None,
                          chat_template: bool = True) -> tuple[str, bool]:
    """The text a generation engine feeds the model; returns (text, add_special_tokens when encoding).

    With ``chat_template`` and a tokenizer that has one, this is :func:`render_prompt` of the
    conversation (with the system turn, if any; the template supplies special tokens). Otherwise a
    string prompt is used verbatim (after ``system_prompt`` and a blank line) and a message list is
    joined as ``role: content`` lines ending with ``assistant:``. A string that already carries a
    chat template (:func:`is_rendered`) is returned as it is, without ``system_prompt``.

    Example: ``text, special = render_for_generation(tok, "Hi", system_prompt="Be brief.")``
    """
    if is_rendered(tokenizer, prompt):
        return prompt, False  # already templated: never wrapped twice, no system turn added
    if chat_template and has_chat_template(tokenizer):
        return render_prompt(tokenizer, as_messages(prompt, system_prompt)), False
    if isinstance(prompt, str):
        return (f"{system_prompt}\n\n{prompt}" if system_prompt else prompt), True
    lines = [f"{m['role']}: {m['content']}" for m in as_messages(prompt, system_prompt)]
    return "\n".join(lines) + "\nassistant:", True


def _ids(tokenizer: Any, text: str, add_special_tokens: bool = False) -> list[int]:
    return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])


def encode_prompt(tokenizer: Any, prompt: str | Messages) -> list[int]:
    """Token ids of :func:`render_prompt` (the template's own special tokens, no extra BOS).

    Without a chat template the tokenizer's usual special tokens (e.g. BOS) are added.
    """
    text = render_prompt(tokenizer, prompt)
    special = not has_chat_template(tokenizer) and not is_rendered(tokenizer, prompt)
    return _ids(tokenizer, text, add_special_tokens=special)


def _eos_id(tokenizer: Any) -> int:
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ModelError("the tokenizer has no EOS token; cannot end completions")
    return int(eos)


def _strip_eos_text(text: str, tokenizer: Any) -> str:
    eos = getattr(tokenizer, "eos_token", None)
    while eos and text.endswith(eos):
        text = text[: -len(eos)]
    return text


def _clean_completion(tokenizer: Any, completion: str | Messages) -> Messages:
    if isinstance(completion, str):
        return [{"role": "assistant", "content": _strip_eos_text(completion, tokenizer)}]
    msgs = [dict(m) for m in completion]
    if msgs and isinstance(msgs[-1].get("content"), str):
        msgs[-1]["content"] = _strip_eos_text(msgs[-1]["content"], tokenizer)
    return msgs


def _end_turn(ids: list[int], tokenizer: Any, add_eos: bool) -> list[int]:
    """Cut after the last special token (the end of turn), or before it when ``add_eos`` is False."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    last = next((i for i in range(len(ids) - 1, -1, -1) if ids[i] in special), None)
    if last is None:
        return ids + [_eos_id(tokenizer)] if add_eos else ids
    return ids[: last + 1] if add_eos else ids[:last]


def encode_prompt_completion(tokenizer: Any, prompt: str | Messages, completion: str | Messages,
                             add_eos: bool = True, chat_template: bool = True) -> tuple[list[int], list[int]]:
    """Split ``prompt + completion`` into ``(prompt_ids, completion_ids)`` on token ids.

    ``prompt_ids`` are the template with the generation prompt; ``completion_ids`` are the rest of
    the full conversation's ids, ending with the end-of-turn/EOS token exactly once (``add_eos``;
    with ``add_eos=False``, e.g. for an answer cut at max length, it is left off). ``completion``
    may be a string (one assistant turn) or a list of messages that follow the prompt. Without a
    chat template a string prompt is plain text and the completion is tokenized after it.

    ``chat_template=False`` treats string prompt and completion as plain text even when the tokenizer
    has a template (text that is already rendered, e.g. the SALMON reviewer prompt: special-token
    strings in it stay special tokens).

    Example: ``p, c = encode_prompt_completion(tok, "2+2?", "4")``; ``tok.decode(c) == "4<|im_end|>"``
    """
    if isinstance(completion, str) and is_rendered(tokenizer, prompt):
        chat_template = False  # the prompt carries its template already
    if not chat_template and not (isinstance(prompt, str) and isinstance(completion, str)):
        raise ModelError("chat_template: false needs plain-text (string) prompts and completions")
    if isinstance(prompt, str) and (not chat_template or not has_chat_template(tokenizer)):
        if not isinstance(completion, str):
            raise ModelError("a message-list completion needs a tokenizer with a chat template")
        prompt_ids = _ids(tokenizer, prompt, add_special_tokens=True)
        comp = _ids(tokenizer, _strip_eos_text(completion, tokenizer))
        return prompt_ids, (comp + [_eos_id(tokenizer)] if add_eos else comp)
    prompt_msgs = as_messages(prompt)
    comp_msgs = _clean_completion(tokenizer, completion)
    prompt_ids = _ids(tokenizer, render_chat(tokenizer, prompt_msgs, add_generation_prompt=True))
    full_ids = _ids(tokenizer, render_chat(tokenizer, prompt_msgs + comp_msgs, add_generation_prompt=False))
    n = len(prompt_ids)
    if full_ids[:n] == prompt_ids:
        return prompt_ids, _end_turn(full_ids[n:], tokenizer, add_eos)
    name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    _warn_once(tokenizer, f"with the chat template of {name!r} the prompt is not a token prefix of the "
                          "full conversation for some examples (e.g. the template rewrites the last "
                          "turn, or the answer starts with whitespace); those completions are tokenized "
                          "on their own after the prompt (warned once per tokenizer)")
    text = "\n\n".join(m["content"] for m in comp_msgs)
    comp = _ids(tokenizer, text)
    return prompt_ids, (comp + [_eos_id(tokenizer)] if add_eos else comp)
