"""Sub-commands of ``freqlens`` that live in their own modules.

Each module defines ``add_parser(commands)`` (``commands`` = the argparse sub-parsers object) that adds
one sub-command with ``set_defaults(run=...)``; :mod:`freqlens.cli` calls every module listed in
:data:`COMMAND_MODULES`. Shared flag helpers (``number``, ``positive_int``, ``add_dataset_flags``,
``resolve_device``) come from :mod:`freqlens.cli`.
"""

COMMAND_MODULES: tuple[str, ...] = ("evaluate", "attack", "analyze", "study")
