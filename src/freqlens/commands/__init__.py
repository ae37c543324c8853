"""The sub-commands of ``freqlens``, one module each.

Each module defines ``add_parser(commands)`` (``commands`` = the argparse sub-parsers object) that adds
one sub-command with ``set_defaults(run=...)``; :mod:`freqlens.cli` lists the modules in its
``COMMANDS`` tuple and calls each one's ``add_parser``. Shared flag helpers (``number``, ``positive_int``,
``add_dataset_flags``, ``add_shard_flag``, ``resolve_device``, ``add_quiet_flag`` — every command takes
``--quiet`` — and ``progress_enabled``; the commands draw their images with
:func:`freqlens.data.pick_images`) and ``distributed_command`` (the handler of a
command that runs under ``torchrun``) come from :mod:`freqlens.commands._common`; the model and method
flags from :mod:`~freqlens.commands._model` and :mod:`~freqlens.commands._methods`. Nothing here imports
:mod:`freqlens.cli`: a command that runs another command line (``zoo build``) calls ``args.main``, which
the cli's parser sets. A command that writes files takes its output folder as ``--out`` (attribute
``out``): :func:`freqlens.cli.main` checks it (see ``OUTPUT_ARGS``) before the command runs, and turns a
filesystem fault into one line.
"""
