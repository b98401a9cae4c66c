"""Judge prompt templates: the shipped templates and principle lists (``resources/``), filling
their ``{placeholders}``, and the prompt and user turn as the judge model sees them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfalign.data.chat import has_chat_template, render_for_generation
from selfalign.errors import ConfigError, DataError


def resources_dir() -> Path:
    """Folder of the templates and principle lists shipped with selfalign."""
    return Path(__file__).resolve().parent.parent / "resources"


def load_template(name_or_path: str, required: Sequence[str] = (), kind: str = "templates") -> str:
    """Text of a template: a file path, or the name of one shipped under ``resources/<kind>/``.

    ``required`` placeholders (e.g. ``("{prompt}", "{response}")``) must all occur in it.
    """
    p = Path(name_or_path).expanduser()
    if not p.is_file():
        shipped = resources_dir() / kind / f"{name_or_path}.txt"
        if not shipped.is_file():
            names = sorted(f.stem for f in (resources_dir() / kind).glob("*.txt"))
            raise ConfigError(f"template {name_or_path!r}: no such file and not a shipped template "
                              f"(shipped: {', '.join(names)})")
        p = shipped
    text = p.read_text(encoding="utf-8")
    missing = [ph for ph in required if ph not in text]
    if missing:
        raise ConfigError(f"{p}: template lacks the placeholder(s) {', '.join(missing)}")
    return text


def fill_template(template: str, **values: str) -> str:
    """Replace ``{name}`` placeholders by ``values`` in one pass (braces elsewhere are kept as-is,
    and braces inside the values are never interpreted)."""
    if not values:
        return template
    pattern = re.compile("|".join(re.escape("{" + k + "}") for k in values))
    return pattern.sub(lambda m: str(values[m.group(0)[1:-1]]), template)


def prompt_text(prompt: Any) -> str:
    """A prompt as plain text for a judge template: a string as-is, a single user message as its
    content, a longer conversation as ``Role: content`` paragraphs."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        if len(prompt) == 1 and isinstance(prompt[0], dict):
            return str(prompt[0].get("content", ""))
        return "\n\n".join(f"{str(m.get('role', '')).capitalize()}: {m.get('content', '')}" for m in prompt)
    raise DataError(f"prompt must be a string or a message list (got {type(prompt).__name__})", key="prompt")


def render_user_turn(tokenizer: Any, text: str) -> tuple[str, bool]:
    """``text`` as one user turn followed by the assistant's generation prompt, rendered as a
    generation engine renders a prompt (:func:`~selfalign.data.chat.render_for_generation`) when the
    tokenizer has a chat template, else ``text`` and a blank line (where a judge's answer prefix
    follows); returns (rendered text, add_special_tokens when encoding)."""
    if has_chat_template(tokenizer):
        return render_for_generation(tokenizer, text)
    return text + "\n\n", True
