"""Training: pure losses (:mod:`.losses`), one shared loop (:mod:`.loop`) and three trainers.

Python API (each writes ``output_dir/model`` — a standard HF folder, LoRA merged unless
``save_adapter_only`` — plus ``metrics.jsonl``, ``train_summary.json`` and ``checkpoints/`` (every
``save_steps`` = 50 steps and at the end; each ``step-N/model`` loads with ``from_pretrained``), and
returns the final metrics; ``resume=True`` continues from the newest checkpoint written with the
same settings, ``overwrite=True`` replaces an earlier run; an ``output_dir`` holding an earlier run
needs one of them — :mod:`.outdir`; ``report_to`` trackers — :mod:`.trackers`)::

    from selfalign.train.dpo import train_dpo   # train_dpo(DPOConfig(...), metrics=None) -> dict
    from selfalign.train.rm import train_rm     # train_rm(RMConfig(...), metrics=None) -> dict
    from selfalign.train.sft import train_sft   # train_sft(SFTConfig(...), metrics=None) -> dict
    from selfalign.train.ppo import train_ppo   # train_ppo(PPOConfig(...), metrics=None) -> dict (RLHF)

Configs live in :mod:`.config`; trainers by name (``get_trainer(name) -> (ConfigClass, train_fn)``) in
:mod:`.registry`, from which the command line ``selfalign train NAME`` is built.
"""
