"""Checks every command runs on its output paths *before* any work, so nothing is overwritten or
left half-made.

:func:`check_outputs` refuses, with one line naming the file and the option:

* an output that is one of the inputs (also through a symlink or another spelling of the path:
  paths are compared after ``Path.resolve()`` and, when both exist, ``os.path.samefile``) — writing
  it would destroy the input;
* an output that is an existing folder, where a file is to be written (``folder=True`` outputs,
  e.g. a run directory, must instead not be an existing file);
* an output whose parent cannot be created (an ancestor is a file) or is not writable.

Example::

    check_outputs(inputs={"input": cfg.input}, outputs={"output": cfg.output})
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from selfalign.errors import DataError

__all__ = ["check_outputs", "same_path"]

PathLike = str | Path


def same_path(a: PathLike, b: PathLike) -> bool:
    """True when ``a`` and ``b`` name the same file or folder (symlinks and ``..`` resolved)."""
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()


def _check_parent(path: Path, key: str) -> None:
    """The first existing ancestor of ``path`` must be a writable folder."""
    parent = path.expanduser().absolute().parent
    while not parent.exists():
        if parent.is_symlink():  # a dangling link: mkdir would fail on it
            raise DataError(f"parent {parent} is a broken symlink", path, key=key)
        parent = parent.parent
    if not parent.is_dir():
        raise DataError(f"cannot create the output's folder: {parent} is a file", path, key=key)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DataError(f"cannot write into {parent} (permission denied)", path, key=key)


def check_outputs(inputs: Mapping[str, PathLike | None], outputs: Mapping[str, PathLike | None],
                  folders: tuple[str, ...] = ()) -> None:
    """Refuse outputs that would overwrite an input, land on a folder, or cannot be created.

    ``inputs`` and ``outputs`` map an option name (shown in the error, e.g. ``output``) to a path;
    ``None`` entries are skipped. Outputs named in ``folders`` are folders to be created (an
    existing folder is fine, an existing file is not). Raises :class:`DataError`
    (``OUTPUT: KEY: reason``).
    """
    ins = {k: Path(v) for k, v in inputs.items() if v is not None}
    for key, value in outputs.items():
        if value is None:
            continue
        out = Path(value)
        for in_key, inp in ins.items():
            if same_path(out, inp):
                raise DataError(f"is the same file as {in_key} {inp}; writing it would overwrite the "
                                "input: choose another output path", out, key=key)
        if key in folders:
            if out.exists() and not out.is_dir():
                raise DataError("exists and is a file, expected a folder", out, key=key)
        elif out.is_dir():
            raise DataError("is an existing folder; give a file path for the output", out, key=key)
        _check_parent(out, key)
