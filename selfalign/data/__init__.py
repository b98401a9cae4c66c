"""Data: record files (io), output-path checks (paths), preference/prompt/SFT formats, chat
templating, validation."""

from selfalign.data.io import (
    atomic_output,
    content_hash,
    iter_jsonl,
    iter_records,
    read_records,
    write_jsonl,
    write_records,
)
from selfalign.data.paths import check_outputs

__all__ = [
    "atomic_output",
    "check_outputs",
    "content_hash",
    "iter_jsonl",
    "iter_records",
    "read_records",
    "write_jsonl",
    "write_records",
]
