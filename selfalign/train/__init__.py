"""Training: pure losses (:mod:`.losses`), one shared loop (:mod:`.loop`) and three trainers.

Python API (each writes ``output_dir/model`` — a standard HF folder, LoRA merged unless
``save_adapter_only`` — plus ``metrics.jsonl``, ``train_summary.json`` and ``checkpoints/``, and
returns the final metrics; ``resume=True`` continues from the newest checkpoint)::

    from selfalign.train.dpo import train_dpo   # train_dpo(DPOConfig(...), metrics=None) -> dict
    from selfalign.train.rm import train_rm     # train_rm(RMConfig(...), metrics=None) -> dict
    from selfalign.train.sft import train_sft   # train_sft(SFTConfig(...), metrics=None) -> dict

Configs live in :mod:`.config`; the command line is ``selfalign train sft|rm|dpo``.
"""
