"""``selfalign data``: convert preference data between formats and validate data files."""

from __future__ import annotations

from collections import Counter
from enum import Enum
from pathlib import Path

import typer

data_app = typer.Typer(help="Convert and validate data files (JSONL, JSON, CSV, parquet, datasets folders).",
                       no_args_is_help=True)


class Target(str, Enum):
    trl = "trl"
    openrlhf = "openrlhf"
    llm_on_ray = "llm-on-ray"


class Style(str, Enum):
    auto = "auto"
    standard = "standard"
    conversational = "conversational"


class KindOpt(str, Enum):
    auto = "auto"
    prompt = "prompt"
    sft = "sft"
    preference = "preference"


@data_app.command("convert")
def convert(
    src: Path = typer.Argument(..., metavar="IN", help="Input preference data: file (.jsonl/.json/.csv/.parquet) or "
                               "datasets folder, in TRL, OpenRLHF, llm-on-ray or implicit-prompt form."),
    dst: Path = typer.Argument(..., metavar="OUT", help="Output file; its extension picks the format "
                               "(.jsonl, .json, .csv, .parquet)."),
    to: Target = typer.Option(..., "--to", help="Target format."),
    prompt_key: str = typer.Option(None, help="OpenRLHF prompt key: names the output key with --to "
                                   "openrlhf (default prompt), the input key otherwise (default: "
                                   "prompt/instruction/question)."),
    chosen_key: str = typer.Option("chosen", help="OpenRLHF chosen key (output with --to openrlhf, "
                                   "else input)."),
    rejected_key: str = typer.Option("rejected", help="OpenRLHF rejected key, e.g. reject (output with "
                                     "--to openrlhf, else input; input 'reject' is recognised anyway)."),
    implicit: bool = typer.Option(False, help="--to openrlhf: write whole conversations under the "
                                  "chosen/rejected keys and no prompt key."),
    style: Style = typer.Option(Style.auto, help="--to trl: keep the style, or make every record "
                                "standard (strings) or conversational (messages)."),
    split: str = typer.Option(None, help="Split of a datasets folder (default train)."),
):
    """Convert preference data to TRL, OpenRLHF or llm-on-ray records (written atomically; OUT must
    not be IN, nor an existing folder).

    Example: selfalign data convert pairs.jsonl pairs_openrlhf.jsonl --to openrlhf --rejected-key reject

    Example: selfalign data convert hf_prefs/ prefs.parquet --to trl --style conversational
    """
    from selfalign.data.convert import llm_on_ray_record, openrlhf_record, trl_record
    from selfalign.data.formats import detect_preference_format, normalizer
    from selfalign.data.io import iter_records, require_records, write_records
    from selfalign.data.paths import check_outputs

    if to is Target.openrlhf:
        in_keys: dict[str, str | None] = {}
        out_prompt_key = None if implicit else (prompt_key or "prompt")
    else:
        in_keys = {"prompt_key": prompt_key, "chosen_key": chosen_key, "rejected_key": rejected_key}
    if to is not Target.openrlhf and implicit:
        raise typer.BadParameter("--implicit applies to --to openrlhf only")
    if to is not Target.trl and style is not Style.auto:
        raise typer.BadParameter("--style applies to --to trl only")

    check_outputs({"IN": src}, {"OUT": dst})
    fn = normalizer("preference", **in_keys)
    det_keys = {k: v for k, v in in_keys.items() if v is not None}
    forms: Counter = Counter()
    located = []
    for line, rec, file in iter_records(src, split=split):
        canon = fn(rec, file=file, line=line)
        forms[detect_preference_format(rec, **det_keys).name] += 1
        located.append((file, line, canon))
    require_records(located, src)

    if to is Target.trl:
        conv = {Style.auto: None, Style.standard: False, Style.conversational: True}[style]
        if conv is None and len({isinstance(c["prompt"], list) for _, _, c in located}) > 1:
            conv = True  # TRL wants one style per dataset
        out = [trl_record(c, conv, file=f, line=ln) for f, ln, c in located]
    elif to is Target.openrlhf:
        out = [openrlhf_record(c, out_prompt_key, chosen_key, rejected_key, file=f, line=ln)
               for f, ln, c in located]
    else:
        out = [llm_on_ray_record(c, "instruction", file=f, line=ln) for f, ln, c in located]
    n = write_records(dst, out)
    found = ", ".join(f"{k} {v}" for k, v in sorted(forms.items())) or "none"
    typer.echo(f"read {len(located)} records from {src} ({found})")
    typer.echo(f"wrote {n} records to {dst} ({to.value})")


@data_app.command("validate")
def validate(
    file: Path = typer.Argument(..., metavar="FILE", help="Data file or datasets folder."),
    kind: KindOpt = typer.Option(KindOpt.auto, help="Record kind (auto: guessed from the first record)."),
    prompt_key: str = typer.Option(None, help="Prompt key (default: prompt/instruction/question/messages)."),
    completion_key: str = typer.Option(None, help="sft: completion key (default: completion/output/"
                                       "response/answer)."),
    chosen_key: str = typer.Option(None, help="preference: chosen key (default chosen)."),
    rejected_key: str = typer.Option(None, help="preference: rejected key (default rejected or reject)."),
    split: str = typer.Option(None, help="Split of a datasets folder (default train)."),
):
    """Check every record; print counts and each bad record as file:line: reason (exit 1 if any).

    Example: selfalign data validate prefs.jsonl --kind preference --rejected-key reject
    """
    from selfalign.data.validate import validate_file

    keys = {"prompt_key": prompt_key, "completion_key": completion_key, "chosen_key": chosen_key,
            "rejected_key": rejected_key}
    report = validate_file(file, kind.value, split=split, **keys)
    for err in report.errors:
        typer.echo(err)
    typer.echo(report.summary())
    if not report.ok:
        # SystemExit, not typer.Exit: click (standalone_mode=False) turns Exit into a return value.
        raise SystemExit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
