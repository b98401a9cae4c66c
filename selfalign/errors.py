"""Errors a user can act on.

Every error raised for bad input is a :class:`SelfalignError`. The CLI prints its one-line
message (traceback only with ``--debug``) and exits with :attr:`SelfalignError.exit_code`.
"""

from __future__ import annotations

from pathlib import Path


class SelfalignError(Exception):
    """An error caused by input the user can fix; printed as one line by the CLI."""

    exit_code = 1


class ConfigError(SelfalignError):
    """A config file or override is invalid (unknown key, wrong type or value)."""

    exit_code = 2


class DataError(SelfalignError):
    """A data file is missing, unreadable or holds a bad record.

    The message reads ``file:line: key: reason`` so an editor can jump to the record.
    """

    def __init__(self, reason: str, file: str | Path | None = None, line: int | None = None,
                 key: str | None = None):
        self.reason, self.file, self.line, self.key = reason, file, line, key
        where = ""
        if file is not None:
            where = f"{file}:{line}: " if line is not None else f"{file}: "
        what = f"{key}: " if key else ""
        super().__init__(f"{where}{what}{reason}")


class ModelError(SelfalignError):
    """A model could not be found, prepared or loaded."""
