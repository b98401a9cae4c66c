"""Config loading: YAML + dotted overrides, unknown-key and type errors with key paths."""

from __future__ import annotations

import pytest

from selfalign.config import (
    StrictModel,
    apply_overrides,
    load_config,
    parse_value,
    per_iteration,
    split_config_args,
)
from selfalign.errors import ConfigError


class Train(StrictModel):
    learning_rate: float = 1e-6
    beta: float | list[float] = 0.1


class Generate(StrictModel):
    num_samples: int = 4
    temperature: float = 0.7


class Recipe(StrictModel):
    name: str = "x"
    train: Train = Train()
    generate: Generate = Generate()


def test_yaml_and_overrides(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: demo\ntrain:\n  learning_rate: 3e-7\n")
    c = load_config(Recipe, cfg, ["train.learning_rate=1e-6", "generate.num_samples=8",
                                  "train.beta=[0.1, 0.01]"])
    assert c.name == "demo" and c.train.learning_rate == 1e-6 and c.generate.num_samples == 8
    assert c.train.beta == [0.1, 0.01]
    assert load_config(Recipe, cfg).train.learning_rate == 3e-7  # YAML 1.1 '3e-7' read as float


def test_unknown_key_names_path_and_closest(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: demo\ntrain:\n  learning_rat: 1e-6\n")
    with pytest.raises(ConfigError) as e:
        load_config(Recipe, cfg)
    msg = str(e.value)
    assert f"{cfg}:3:" in msg and "train.learning_rat" in msg and "train.learning_rate" in msg
    assert e.value.exit_code == 2
    with pytest.raises(ConfigError, match="generate.num_sample.*generate.num_samples"):
        load_config(Recipe, None, ["generate.num_sample=3"])


def test_wrong_type_names_path_and_expectation():
    with pytest.raises(ConfigError, match=r"generate\.num_samples: .*integer"):
        load_config(Recipe, None, ["generate.num_samples=lots"])


def test_bad_override_syntax_and_sections():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"name": "x"}, ["name.sub=1"])


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Recipe, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match=f"{bad}:\\d+: invalid YAML"):
        load_config(Recipe, bad)


def test_split_args_and_per_iteration():
    assert split_config_args(["a.yaml", "x=1", "y.z=2"]) == ("a.yaml", ["x=1", "y.z=2"])
    with pytest.raises(ConfigError):
        split_config_args(["a.yaml", "b.yaml"])
    assert [per_iteration([0, 0, 0.1], t) for t in range(4)] == [0, 0, 0.1, 0.1]
    assert per_iteration(0.5, 7) == 0.5


def test_cli_unknown_override_exit_code_2(tmp_path, capsys):
    """The CLI turns ConfigError into a one-line message and exit code 2."""
    from selfalign.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: demo\n")
    with pytest.raises(SystemExit) as e:
        main(["models", "prepare", "not-a-model"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown registry model" in err


# --------------------------------------------------------------------------- override value rule
class Judge(StrictModel):
    type: str = "rubric"
    score_regex: str = r"Score: ([0-9]+)"
    mode: str = "sample"


class WithJudge(StrictModel):
    judge: Judge = Judge()
    train: Train = Train()
    win_rate_judge: dict | None = None


@pytest.mark.parametrize("text, expected", [
    ("1e-6", 1e-6), ("8", 8), ("true", True), ("null", None), ("~", None), ("foo", "foo"),
    ('"5"', "5"), ("'yes'", "yes"), ("", ""),
    ("[0.1, 0.01]", [0.1, 0.01]), ("[]", []), ("{type: function}", {"type": "function"}),
    ("{a: {b: [1, 2]}}", {"a": {"b": [1, 2]}}), ("{}", {}),
    # a mapping or list not written as a flow collection is the raw text
    ("Rating: ([0-9]+)", "Rating: ([0-9]+)"), ("Score: ", "Score: "), ("- item", "- item"),
    ("a: b: c", "a: b: c"),
    # YAML syntax errors → the raw text
    ("{a: [1", "{a: [1"), ("[1, 2", "[1, 2"), ("@home", "@home"), ("'open", "'open"),
    # unquoted strings are never cut by comments or trimmed; dates stay text
    ("Score #([0-9])", "Score #([0-9])"), ("###", "###"), (" padded ", " padded "),
    ("2024-01-01", "2024-01-01"), ("a=b", "a=b"),
])
def test_parse_value_rule(text, expected):
    assert parse_value(text) == expected
    assert type(parse_value(text)) is type(expected)


def test_regex_with_colon_space_reaches_the_model_exactly():
    c = load_config(WithJudge, None, ["judge.score_regex=Rating: ([0-9]+)", "judge.mode=expected"])
    assert c.judge.score_regex == "Rating: ([0-9]+)" and c.judge.mode == "expected"
    c = load_config(WithJudge, None, ["judge.score_regex=(?:Score|Points) #?([0-9.]+)"])
    assert c.judge.score_regex == "(?:Score|Points) #?([0-9.]+)"


def test_regex_override_validates_as_the_rubric_judge_config():
    """The path ``selfalign judge`` takes: load_config, then the judge's own schema."""
    from selfalign.cli.judge import JudgeCommandConfig
    from selfalign.judges import parse_judge_config

    cfg = load_config(JudgeCommandConfig, None, ["input=c.jsonl", "output=s.jsonl", "judge.type=rubric",
                                                 "judge.score_regex=Rating: ([0-9]+)/5",
                                                 "judge.expected_prefix=Rating: "])
    jcfg = parse_judge_config(cfg.judge)
    assert jcfg.score_regex == "Rating: ([0-9]+)/5" and jcfg.expected_prefix == "Rating: "


def test_flow_mapping_validates_as_nested_section_and_replaces(tmp_path):
    c = load_config(WithJudge, None, ["train={learning_rate: 2e-6, beta: [0.1, 0.05]}",
                                      "win_rate_judge={type: function}"])
    assert isinstance(c.train, Train) and c.train.learning_rate == 2e-6 and c.train.beta == [0.1, 0.05]
    assert c.win_rate_judge == {"type": "function"}
    cfg = tmp_path / "c.yaml"
    cfg.write_text("win_rate_judge: {type: rubric, mode: expected, model: base}\n"
                   "judge:\n  type: rubric\n  mode: expected\n")
    # a {...} value replaces the whole section; later dotted keys change single fields of it
    c = load_config(WithJudge, cfg, ["win_rate_judge={type: function}", "win_rate_judge.mode=all",
                                     "judge={type: pairwise}"])
    assert c.win_rate_judge == {"type": "function", "mode": "all"}
    assert c.judge.type == "pairwise" and c.judge.mode == "sample"  # file's mode replaced, default back
    # dotted keys merge into what the file has
    assert load_config(WithJudge, cfg, ["judge.score_regex=R: (.)"]).judge.mode == "expected"
    # keys inside a flow mapping are checked like any other
    with pytest.raises(ConfigError, match="unknown key 'train.learning_rat'.*train.learning_rate"):
        load_config(WithJudge, None, ["train={learning_rat: 1e-6}"])


def test_flow_list_stays_a_list():
    assert apply_overrides({}, ["train.beta=[0.1, 0.01]"]) == {"train": {"beta": [0.1, 0.01]}}
    assert load_config(Recipe, None, ["train.beta=[0.1,0.05]"]).train.beta == [0.1, 0.05]


def test_override_into_a_scalar_is_one_line_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  beta: 0.1\n")
    with pytest.raises(ConfigError) as e:
        load_config(Recipe, cfg, ["train.beta.x=1"])
    msg = str(e.value)
    assert "\n" not in msg and "train.beta.x" in msg and "'train.beta' is a value (0.1), not a section" in msg
    with pytest.raises(ConfigError, match="empty key"):
        apply_overrides({}, ["train..beta=1"])
    # a key that only has a schema default is checked by the schema, also in one line
    with pytest.raises(ConfigError) as e:
        load_config(Recipe, None, ["train.beta.x=1"])
    assert "\n" not in str(e.value) and "train.beta" in str(e.value)


def test_cli_judge_takes_a_flow_mapping_override(tmp_path, capsys):
    """``selfalign judge`` reads KEY=VALUE through apply_overrides: a {...} judge, then a dotted key."""
    from selfalign.cli import main

    (tmp_path / "fn.py").write_text("def score(prompt, response, meta):\n    return float(len(response))\n")
    inp, out = tmp_path / "c.jsonl", tmp_path / "s.jsonl"
    inp.write_text('{"id": "a", "prompt": "p", "responses": [{"text": "x"}, {"text": "xyz"}]}\n')
    try:
        main(["judge", f"input={inp}", f"output={out}", "judge={type: function, name: len}",
              f"judge.function={tmp_path / 'fn.py'}:score"])
    except SystemExit as e:
        assert not e.code, capsys.readouterr().err
    import json

    rec = json.loads(out.read_text())
    assert [r["score"] for r in rec["responses"]] == [1.0, 3.0]


def test_cli_run_reads_recipe_override_with_the_same_rule(tmp_path, capsys):
    from selfalign.cli import main

    cfg = tmp_path / "r.yaml"
    cfg.write_text("name: x\n")
    with pytest.raises(SystemExit) as e:
        main(["run", str(cfg), "recipe={a: 1}"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown recipe {'a': 1}" in err
