"""Training: pure losses (:mod:`.losses`), one shared loop (:mod:`.loop`) and the SFT / RM / DPO trainers."""
