"""Evaluation: verifiable-instruction pass rates and judge/check agreement (:mod:`.verifiable`),
win rates and tabular TSTR live in sibling modules. Import the module you need; nothing heavy
is imported here."""
