"""Ray: trainers on Ray Train workers (same weights as one process with the whole batch), PPO on two
workers (runs, resumes), generation over Ray actors (same records; a killed actor's shard redone),
placement refused fast, the RM .conf → PPO .conf chain. A local 2-CPU Ray instance for the module."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from test_train_dpo import base_lm, make_pairs, max_diff, weights  # noqa: E402

from selfalign.distributed.cluster import check_placement, pack  # noqa: E402
from selfalign.distributed.config import DistributedConfig  # noqa: E402
from selfalign.errors import ConfigError, SelfalignError  # noqa: E402
from selfalign.train.registry import run_trainer  # noqa: E402
from selfalign.utils.metrics import read_metrics  # noqa: E402

TWO = {"backend": "ray", "num_workers": 2}


@pytest.fixture(scope="module")
def local_ray():
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return base_lm(tmp_path_factory.mktemp("ray_lm"))


def losses(out: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_metrics(out / "metrics.jsonl") if "loss" in r]


# -------------------------------------------------------------------------------------- placement
def test_pack_places_bundles_first_fit():
    nodes = [{"CPU": 2.0}, {"CPU": 4.0, "GPU": 1.0}]
    assert pack([{"CPU": 2}] * 3, nodes) == [1, 1, 0]
    assert pack([{"CPU": 1, "GPU": 1}] * 2, nodes) is None
    assert pack([{"CPU": 3}] * 2, nodes) is None


def test_too_many_workers_fail_fast_with_a_clear_message(local_ray):
    cfg = DistributedConfig(backend="ray", num_workers=3, resources_per_worker={"CPU": 1})
    with pytest.raises(ConfigError, match=r"3 training workers × \{CPU: 1\} cannot be placed: .*CPU 2.*room for 2"):
        check_placement(local_ray, cfg, "training workers")
    with pytest.raises(ConfigError, match="GPU 0"):
        check_placement(local_ray, DistributedConfig(backend="ray", resources_per_worker={"GPU": 1}))


def test_a_conf_asking_for_more_workers_than_the_cluster_has_fails_before_training(local_ray, lm, tmp_path):
    from selfalign.recipes import rlhf

    conf = tmp_path / "rm.conf"
    conf.write_text(repr({"General": {"base_model": lm, "output_dir": str(tmp_path / "rm")},
                          "Dataset": {"train_file": make_pairs(tmp_path / "p.jsonl", 8, 0)},
                          "Training": {"num_training_workers": 4, "resources_per_worker": {"CPU": 1}}}))
    with pytest.raises(ConfigError, match="4 training workers .* cannot be placed"):
        rlhf.main(str(conf), [])
    assert not (tmp_path / "rm").exists()  # nothing half-written


def test_config_needs_backend_ray_for_workers():
    with pytest.raises(ValueError, match="need backend: ray"):
        DistributedConfig(num_workers=2)


# --------------------------------------------------------------------------------------- trainers
def test_dpo_two_workers_equal_one_process_with_double_batch(local_ray, lm, tmp_path):
    from test_train_dpo import cfg_for

    train = make_pairs(tmp_path / "pairs.jsonl", 16, 0)
    one = run_trainer("dpo", cfg_for(lm, train, tmp_path / "one", per_device_batch_size=4, max_steps=3))
    two = run_trainer("dpo", cfg_for(lm, train, tmp_path / "two", per_device_batch_size=2, max_steps=3,
                                     distributed=TWO))
    assert max_diff(weights(tmp_path / "one"), weights(tmp_path / "two")) < 1e-6
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert [s for s, _ in a] == [s for s, _ in b] == [1, 2, 3]  # one row per step: only the main worker logs
    assert [v for _, v in a] == pytest.approx([v for _, v in b], abs=1e-6)
    assert two["steps"] == 3 and two["loss"] == pytest.approx(one["loss"], abs=1e-6)
    pointer = json.loads(next((tmp_path / "two" / "ray_train").glob("checkpoint_*/pointer.json")).read_text())
    assert Path(pointer["path"]).name in ("model", "step-00000003")  # Ray's checkpoints point at ours


REWARD = """
import os
CALLS = [0]
def upper_or_die(prompt, response, meta):
    CALLS[0] += 1  # 1 probe call, then 4 rows per worker and step
    if os.path.exists(MARKER) and CALLS[0] > 9:
        raise RuntimeError("killed at step 3")
    letters = [c for c in response if c.isalpha()]
    return sum(c.isupper() for c in letters) / max(1, len(letters))
"""


def test_ppo_two_workers_runs_and_resumes(local_ray, lm, tmp_path):
    from test_train_ppo import cfg_for

    marker = tmp_path / "die"
    (tmp_path / "rew.py").write_text(f"MARKER = {str(marker)!r}\n" + REWARD)
    with (tmp_path / "prompts.jsonl").open("w") as f:
        for i in range(16):
            f.write(json.dumps({"id": f"p{i}", "prompt": f"Say something about thing {i}."}) + "\n")
    marker.write_text("1")
    out = tmp_path / "ppo"
    kw = dict(max_steps=3, save_steps=2, rollout_batch_size=4, generation={"max_new_tokens": 6, "num_samples": 2},
              per_device_batch_size=2, gradient_accumulation_steps=1, distributed=TWO,
              rewards=[{"type": "function", "function": f"{tmp_path / 'rew.py'}:upper_or_die"}])
    with pytest.raises(SelfalignError, match="killed at step 3"):  # a worker's error, as one line
        run_trainer("ppo", cfg_for(lm, tmp_path, out, **kw))
    assert (out / "checkpoints" / "step-00000002").is_dir() and not (out / "model").exists()
    marker.unlink()
    done = run_trainer("ppo", cfg_for(lm, tmp_path, out, resume=True, **kw))
    assert done["steps"] == 3 and (out / "model" / "model.safetensors").is_file()
    rows = [r for r in read_metrics(out / "metrics.jsonl") if "reward_raw_mean" in r]
    assert [r["step"] for r in rows] == [1, 2, 3]  # each step logged once, by the main worker
    w2 = weights(out / "checkpoints" / "step-00000002")
    assert max_diff(w2, weights(out)) > 0  # step 3 trained


# ------------------------------------------------------------------------------------- generation
class DiesOnce:
    """A generation actor that kills its own process on its first shard while the marker exists."""

    def __init__(self, engine_cfg, cwd=None):
        from selfalign.distributed.actors import GenerateWorker

        self.inner = GenerateWorker(engine_cfg, cwd)

    def fingerprint(self):
        return self.inner.fingerprint()

    marker = ""  # set by the test (the class is pickled by value with it)

    def run(self, task):
        if os.path.exists(self.marker):
            os.remove(self.marker)
            os._exit(1)  # the actor's process dies mid-shard
        return self.inner.run(task)


def test_generation_over_two_actors_equals_one_process_and_survives_a_kill(local_ray, tiny_model, tmp_path):
    import ray.cloudpickle

    from selfalign.distributed.actors import RayEngine
    from selfalign.generation.engine import GenerateConfig, build_engine, generate_records

    recs = [{"id": f"p{i}", "prompt": f"Tell me about thing {i}."} for i in range(12)]
    cfg = GenerateConfig(model=str(tiny_model), input="x", output="y", num_samples=2, max_new_tokens=10,
                         temperature=1.0, batch_size=8)
    one = generate_records(build_engine(cfg.engine()), recs, cfg.sampling(), tmp_path / "one.jsonl", shard_size=4,
                           progress=False)
    ray_cfg = cfg.model_copy(update={"distributed": DistributedConfig(**TWO)})
    engine = build_engine(ray_cfg.engine())
    assert isinstance(engine, RayEngine) and engine.fingerprint() == build_engine(cfg.engine()).fingerprint()
    two = generate_records(engine, recs, cfg.sampling(), tmp_path / "two.jsonl", shard_size=4, progress=False)
    assert two == one  # record for record
    engine.close()

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    marker = tmp_path / "die"
    marker.write_text("1")
    dies = type("DiesOnceHere", (DiesOnce,), {"marker": str(marker)})
    dying = RayEngine(cfg.engine().model_dump(mode="json"), DistributedConfig(**TWO), worker_cls=dies)
    redone = generate_records(dying, recs, cfg.sampling(), tmp_path / "three.jsonl", shard_size=4, progress=False)
    assert dying.restarts == 1 and redone == one
    dying.close()


# ------------------------------------------------------------------------------------ .conf chain
def test_rm_conf_then_ppo_conf_chain(local_ray, lm, tmp_path):
    """The shipped example configs, on a tiny model: the RM stage on 2 Ray workers equals one process
    with the whole batch; the PPO stage loads the RM the first stage saved (rm_pretrain)."""
    from selfalign.cli import main
    from selfalign.train.config import RMConfig
    from selfalign.train.rm import train_rm

    root = Path(__file__).resolve().parents[1] / "examples" / "rlhf"
    data = tmp_path / "data"
    shutil.copytree(root / "data", data)
    common = [f"General.output_dir={tmp_path}/logs", "selfalign.max_length=96"]
    rm_args = [f"General.base_model={lm}", f"General.checkpoint_dir={tmp_path}/ckpt/rm",
               f"Dataset.train_file={data}/rm_train.jsonl", f"Dataset.validation_file={data}/rm_heldout.jsonl",
               "Training.batch_size=2", "selfalign.max_steps=2"]
    main(["run", str(root / "reward.conf"), *common, *rm_args])
    rm_dir = tmp_path / "ckpt" / "rm"
    assert (rm_dir / "model" / "config.json").is_file()
    single = train_rm(RMConfig(model=lm, train_file=f"{data}/rm_train.jsonl", output_dir=str(tmp_path / "rm1"),
                               per_device_batch_size=4, max_steps=2, max_length=96, learning_rate=2e-5,
                               weight_decay=0.01, warmup_ratio=0.1, save_steps=0))
    assert max_diff(weights(rm_dir), weights(tmp_path / "rm1")) < 1e-6 and single["steps"] == 2
    assert (tmp_path / "logs" / "metrics.jsonl").is_file()  # output_dir: the training log

    ppo_args = [f"General.model_name={lm}", f"General.rm_pretrain={rm_dir}", f"General.rm_name={lm}",
                f"General.checkpoint_dir={tmp_path}/ckpt/ppo", f"Dataset.train_file={data}/ppo_train.jsonl",
                f"Dataset.validation_file={data}/ppo_heldout.jsonl", "Training.experience_batch_size=2",
                "Training.batch_size=2", "Training.num_training_workers=null", "Training.resources_per_worker=null",
                "selfalign.max_steps=1", "selfalign.eval_steps=0", "selfalign.generation.max_new_tokens=4"]
    main(["run", str(root / "ppo.conf"), *common, *ppo_args])
    ckpt = next((tmp_path / "ckpt" / "ppo" / "checkpoints").iterdir())
    settings = json.loads((ckpt / "state.json").read_text())["settings"]
    assert settings["rewards"][0]["model"] == str(rm_dir / "model")  # the RM the first stage saved
    assert (tmp_path / "ckpt" / "ppo" / "model" / "model.safetensors").is_file()


# ---------------------------------------------------------------------------------------- judging
def test_judging_over_two_actors_equals_one_process(local_ray):
    from selfalign.distributed.actors import RayJudge
    from selfalign.judges import build_judge

    meta = {"checks": [{"type": "max_words", "n": 3}, {"type": "no_commas"}, {"type": "lowercase"}]}
    texts = ["all good here", "Too, many words in this", "Nope, Upper", "fine, fine", "ok then"]
    recs = [{"id": f"r{i}", "prompt": "Say something.", "meta": meta if i % 3 else {},
             "responses": [{"text": t, "finish": "stop", "num_tokens": 3} for t in texts[i % 5:] + texts[:i % 5]]}
            for i in range(9)]
    one = build_judge({"type": "function"})
    two = build_judge({"type": "function", "distributed": TWO})
    assert isinstance(two, RayJudge)
    assert two.score_records(recs) == one.score_records(recs)  # in order, record for record
    assert two.stats() == one.stats()  # the actors' counters summed
    two.close()
