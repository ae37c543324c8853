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


class CheckpointError(FreqlensError, ValueError):
    """A checkpoint is unreadable or belongs to another model."""


class ModelError(FreqlensError, ValueError):
    """Unknown model name, or an input the model cannot take."""


class TrainingError(FreqlensError, RuntimeError):
    """Training cannot go on (e.g. the loss became NaN)."""
