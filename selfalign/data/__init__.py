"""Data: record files (io), preference/prompt/SFT formats, chat templating, validation."""

from selfalign.data.io import (
    atomic_output,
    content_hash,
    iter_jsonl,
    iter_records,
    read_records,
    write_jsonl,
    write_records,
)

__all__ = [
    "atomic_output",
    "content_hash",
    "iter_jsonl",
    "iter_records",
    "read_records",
    "write_jsonl",
    "write_records",
]
