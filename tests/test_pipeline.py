"""Stage runner: skip finished stages, re-run on changed inputs/config, resume killed stages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from selfalign.pipeline import Run, hash_path


def _writer(text, calls):
    def fn(st):
        calls.append(st.resumed)
        out = st.output("data", "data.jsonl")
        tmp = out.with_name(".tmp-data.jsonl")
        tmp.write_text(text)
        os.replace(tmp, out)
        return {"n": len(text)}
    return fn


def test_skip_when_unchanged(tmp_path):
    inp = tmp_path / "in.txt"
    inp.write_text("hello")
    calls = []
    run = Run(tmp_path / "run", {"a": 1})
    r1 = run.stage("gen", 1, 1, _writer("x", calls), inputs={"prompts": inp}, config={"k": 1})
    assert not r1.skipped and r1.metrics == {"n": 1}
    r2 = Run(tmp_path / "run", {"a": 1}).stage("gen", 1, 1, _writer("x", calls), inputs={"prompts": inp},
                                               config={"k": 1})
    assert r2.skipped and calls == [False]
    man = json.loads((r1.dir / "manifest.json").read_text())
    assert man["status"] == "done" and man["inputs"]["prompts"]["hash"] == hash_path(inp)
    assert man["outputs"]["data"]["hash"] == hash_path(r1.dir / "data.jsonl")


def test_rerun_when_input_or_config_changes(tmp_path):
    inp = tmp_path / "in.txt"
    inp.write_text("hello")
    calls = []
    run = Run(tmp_path / "run")
    run.stage("gen", 1, 1, _writer("x", calls), inputs={"p": inp}, config={"k": 1})
    inp.write_text("changed")
    r = run.stage("gen", 1, 1, _writer("y", calls), inputs={"p": inp}, config={"k": 1})
    assert not r.skipped and (r.dir / "data.jsonl").read_text() == "y"
    r = run.stage("gen", 1, 1, _writer("z", calls), inputs={"p": inp}, config={"k": 2})
    assert not r.skipped and (r.dir / "data.jsonl").read_text() == "z"
    assert calls == [False, False, False]


def test_downstream_reruns_when_upstream_output_changes(tmp_path):
    inp = tmp_path / "in.txt"
    inp.write_text("a")
    run = Run(tmp_path / "run")
    calls = []
    up = run.stage("gen", 1, 1, _writer("one", calls), inputs={"p": inp})
    down = run.stage("pair", 1, 2, _writer("d", calls), inputs={"data": up.outputs["data"]})
    assert not down.skipped
    up = run.stage("gen", 1, 1, _writer("two", calls), inputs={"p": inp}, config={"v": 2})
    down = run.stage("pair", 1, 2, _writer("d", calls), inputs={"data": up.outputs["data"]})
    assert not down.skipped and len(calls) == 4


def test_failed_stage_resumes_with_its_directory(tmp_path):
    run = Run(tmp_path / "run")

    def crashing(st):
        (st.dir / "shard-0.jsonl").write_text("kept")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run.stage("gen", 1, 1, crashing)
    man = json.loads((tmp_path / "run" / "r1s1-gen" / "manifest.json").read_text())
    assert man["status"] == "failed"
    seen = {}

    def resume(st):
        seen["resumed"] = st.resumed
        seen["shard"] = (st.dir / "shard-0.jsonl").read_text()
        out = st.output("data", "data.jsonl")
        out.write_text("ok")

    r = run.stage("gen", 1, 1, resume)
    assert seen == {"resumed": True, "shard": "kept"} and not r.skipped
    man = json.loads((r.dir / "manifest.json").read_text())
    assert man["status"] == "done" and man["attempts"] == 2


def test_missing_output_is_not_marked_done(tmp_path):
    run = Run(tmp_path / "run")

    def forgetful(st):
        st.output("data", "data.jsonl")

    with pytest.raises(RuntimeError, match="without writing its outputs"):
        run.stage("gen", 1, 1, forgetful)
    man = json.loads((tmp_path / "run" / "r1s1-gen" / "manifest.json").read_text())
    assert man["status"] == "failed"


def test_killed_process_leaves_running_manifest_and_resumes(tmp_path):
    """A SIGKILL mid-stage leaves status 'running'; the next run resumes in the same directory."""
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, time
        from selfalign.pipeline import Run
        run = Run({str(tmp_path / 'run')!r})
        def fn(st):
            done = sorted(p.name for p in st.dir.glob('shard-*'))
            for i in range(len(done), 4):
                (st.dir / f'shard-{{i}}').write_text(str(i))
                if sys.argv[1] == 'kill' and i == 1:
                    os.kill(os.getpid(), 9)
            out = st.output('data', 'data.txt')
            out.write_text(','.join(sorted(p.name for p in st.dir.glob('shard-*'))))
            return {{'resumed': st.resumed}}
        r = run.stage('gen', 1, 1, fn)
        print(r.metrics)
    """))
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    p = subprocess.run([sys.executable, str(script), "kill"], env=env, capture_output=True)
    assert p.returncode == -signal.SIGKILL
    man = json.loads((tmp_path / "run" / "r1s1-gen" / "manifest.json").read_text())
    assert man["status"] == "running"
    p = subprocess.run([sys.executable, str(script), "ok"], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "'resumed': True" in p.stdout
    assert (tmp_path / "run" / "r1s1-gen" / "data.txt").read_text() == "shard-0,shard-1,shard-2,shard-3"
