"""Sub-commands of ``freqlens`` that live in their own modules.

Each module defines ``add_parser(commands)`` (``commands`` = the argparse sub-parsers object) that adds
one sub-command with ``set_defaults(run=...)``; :mod:`freqlens.cli` calls every module listed in
:data:`COMMAND_MODULES`. Shared flag helpers (``number``, ``positive_int``, ``add_dataset_flags``,
``resolve_device``, ``add_quiet_flag`` — every command takes ``--quiet`` — and ``progress_enabled``) come
from :mod:`freqlens.cli`. A command that writes files takes its output folder
as ``--out`` (attribute ``out``): :func:`freqlens.cli.main` checks it (see ``OUTPUT_ARGS``) before the
command runs, and turns a filesystem fault into one line.
"""

COMMAND_MODULES: tuple[str, ...] = ("evaluate", "attack", "analyze", "study", "zoo")
