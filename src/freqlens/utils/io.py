"""Atomic writes and output folders.

Each writer writes to a temporary file in the destination folder, flushes and fsyncs it, then
``os.replace``-s it over the destination (atomic on POSIX and Windows): a file is either the old one or
the complete new one, never half written. A failed write (full disk, read-only folder) raises
:class:`~freqlens.errors.OutputError` naming the destination.

:func:`prepare_output_dir` checks an output folder before a command does any work; inside
:func:`removing_created_dirs_on_error` the folders it creates are removed again, when still empty, if the
command fails. :class:`FlatRecord` gives a dataclass of numbers its JSON form.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from freqlens.errors import OutputError

_created_dirs: list[list[Path]] = []
"""One list per active :func:`removing_created_dirs_on_error` block (innermost last): the folders
:func:`prepare_output_dir` created in it, outermost first."""


def _default_mode() -> int:
    """Permissions of a newly created file under the current umask (``mkstemp`` would give 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _write_error(path: Path, error: OSError) -> OutputError:
    """``cannot write PATH: REASON`` for an :class:`OSError` met while writing ``path``."""
    reason = error.strerror or str(error) or type(error).__name__
    return OutputError(f"cannot write {path}: {reason}", error.errno, error.strerror, str(path))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; create parent folders.

    Args:
        path: The destination file.
        data: Its new content.

    Returns:
        ``path``.

    Raises:
        OutputError: The file cannot be written (``cannot write PATH: No space left on device``); the
            old file, if any, is kept and no temporary file is left behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise _write_error(path, error) from error
    try:
        os.chmod(tmp, _default_mode())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(error, OSError) and not isinstance(error, OutputError):
            raise _write_error(path, error) from error
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; create parent folders.

    Args:
        path: The destination file.
        text: Its new content.

    Returns:
        ``path``.

    Raises:
        OutputError: The file cannot be written (see :func:`atomic_write_bytes`).
    """
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as JSON (keys in their order, NaN / inf allowed, a final newline) to ``path`` atomically.

    Args:
        path: The destination file.
        obj: A JSON-able object.
        indent: Spaces per indentation level.

    Returns:
        ``path``.

    Raises:
        OutputError: The file cannot be written (see :func:`atomic_write_bytes`).
    """
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False, allow_nan=True) + "\n")


def atomic_save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` to ``path`` atomically.

    Args:
        path: The destination file.
        obj: What to save (a tensor, a state dict, ...).

    Returns:
        ``path``.

    Raises:
        OutputError: The file cannot be written (see :func:`atomic_write_bytes`).
    """
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def _created_by_mkdir(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, outermost first."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists() or folder.is_symlink():
            break
        missing.append(folder)
    return missing[::-1]


def _check_no_file_in_the_way(path: Path) -> None:
    """Raise :class:`OutputError` when ``path`` or its nearest existing ancestor is not a folder."""
    for folder in (path, *path.parents):
        if folder.exists():
            if folder.is_dir():
                return
            if folder == path:
                raise OutputError(f"cannot use {path} as output folder: it is an existing file",
                                  errno.EEXIST, os.strerror(errno.EEXIST), str(path))
            raise OutputError(f"cannot create output folder {path}: {folder} is a file, not a folder",
                              errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))


def prepare_output_dir(path: str | os.PathLike) -> Path:
    """Make sure ``path`` is a folder this process can write to, before a command does any work.

    Creates the folder (and missing parents) when needed, then creates and deletes a probe file in it.
    Inside :func:`removing_created_dirs_on_error`, the folders it created are remembered.

    Args:
        path: The output folder.

    Returns:
        ``path`` as a :class:`~pathlib.Path` (not resolved).

    Raises:
        OutputError: One line saying why: ``path`` (or a parent) is a file, the folder cannot be created,
            or it is not writable (read-only, full disk).
    """
    path = Path(path)
    missing: list[Path] = []
    try:
        _check_no_file_in_the_way(path)
        missing = _created_by_mkdir(path)
        path.mkdir(parents=True, exist_ok=True)
    except OutputError:
        raise
    except OSError as error:
        raise OutputError(f"cannot create output folder {path}: {error.strerror or error}", error.errno,
                          error.strerror, str(path)) from error
    finally:  # also the parents made before a failure, so that they are removed again
        if _created_dirs:
            _created_dirs[-1].extend(folder for folder in missing if folder.is_dir())
    try:
        fd, probe = tempfile.mkstemp(prefix=".freqlens-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise OutputError(f"cannot write to output folder {path}: {error.strerror or error}", error.errno,
                          error.strerror, str(path)) from error
    return path


def remove_empty_dirs(folders: list[Path]) -> None:
    """Remove those of ``folders`` (listed outermost first) that are empty, innermost first; keep the
    others (and anything that cannot be removed) silently."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            pass


@contextlib.contextmanager
def removing_created_dirs_on_error() -> Iterator[list[Path]]:
    """Within the block, remember the folders :func:`prepare_output_dir` creates; when the block raises,
    remove those still empty (a failed command leaves no empty output folders behind; folders holding
    complete earlier files stay).

    Yields:
        The list of folders created so far in the block, outermost first.
    """
    created: list[Path] = []
    _created_dirs.append(created)
    try:
        yield created
    except BaseException:
        remove_empty_dirs(created)
        raise
    finally:
        popped = _created_dirs.pop()
        assert popped is created, "removing_created_dirs_on_error blocks must nest"


class FlatRecord:
    """Mixin of a dataclass of measured numbers: its JSON form (``to_dict``) is its fields."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: field name -> value (:func:`dataclasses.asdict`)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]
