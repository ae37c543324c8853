"""User-facing error types.

Anything raised as a :class:`FreqlensError` is a *user* error (bad file, unknown name, wrong shape): the
command line prints its message on one line and exits with status 2, without a traceback.
"""

from __future__ import annotations


class FreqlensError(Exception):
    """Base class of errors caused by user input rather than by a bug."""


class DataError(FreqlensError, ValueError):
    """A dataset is missing, truncated, corrupt or inconsistent."""


class ChecksumError(DataError):
    """A downloaded file does not match its published checksum."""


class InputError(FreqlensError, ValueError):
    """Images, targets or model outputs that break the input conventions (e.g. pixels outside [0, 1],
    a model returning NaN logits)."""


class CheckpointError(FreqlensError, ValueError):
    """A checkpoint is unreadable or belongs to another model."""


class ModelError(FreqlensError, ValueError):
    """Unknown model name, or an input the model cannot take."""


class TrainingError(FreqlensError, RuntimeError):
    """Training cannot go on (e.g. the loss became NaN)."""


class ReportError(FreqlensError, ValueError):
    """Study results that cannot go into a report: malformed ``results.json``, or a figure entry that
    leaves its study folder or is not a PNG file."""


class OutputError(FreqlensError, OSError):
    """An output folder or file cannot be created or written (a file in the way, a read-only folder, a
    full disk). Still an :class:`OSError`, so code that tolerates failed writes (caches) keeps doing so.

    Args:
        message: The one-line message (``str(error)``).
        errno: The operating-system error number, when known.
        strerror: The operating system's text for ``errno``.
        filename: The file or folder that could not be written.
    """

    def __init__(self, message: str, errno: int | None = None, strerror: str | None = None,
                 filename: str | None = None) -> None:
        super().__init__(message)
        self.errno, self.strerror, self.filename = errno, strerror, filename

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
