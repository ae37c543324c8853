"""The model flags shared by ``explain``, ``evaluate``, ``attack`` and ``analyze`` (and its ``--compare``).

``--checkpoint FILE|zoo:NAME`` (a freqlens checkpoint, a zoo model, a TorchScript file or a
``torch.export`` archive) or ``--model PKG.MODULE:FACTORY`` with ``--model-args`` and ``--weights``; both
take ``--normalize`` and ``--output``. The loading itself is :mod:`freqlens.models.user`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from freqlens.errors import FreqlensError

_CHECKPOINT_HELP = (
    "a checkpoint written by freqlens train, zoo:NAME (a trained model shipped with freqlens: freqlens zoo "
    "list), a TorchScript file (torch.jit.save) or a torch.export archive (.pt2, exported in eval mode with a "
    "dynamic batch dimension); TorchScript and export archives run the code they hold: give only files you "
    "trust. Alternative: --model"
)


def add_model_flags(parser: argparse.ArgumentParser, *, prefix: str = "", checkpoint_flag: str = "--checkpoint",
                    what: str = "the model") -> None:
    """Add the model flags to ``parser``.

    Args:
        parser: A sub-command's parser.
        prefix: Prefix of the flag names other than the checkpoint flag (``"compare-"`` gives
            ``--compare-model``...); their attributes start with it too (``compare_model``).
        checkpoint_flag: The flag of the checkpoint (``--checkpoint``, or ``--compare`` for analyze).
        what: How the help names this model.
    """
    group = parser.add_argument_group(f"{what} (give {checkpoint_flag} or --{prefix}model)")
    group.add_argument(checkpoint_flag, type=Path, default=None, metavar="FILE|zoo:NAME", help=_CHECKPOINT_HELP)
    group.add_argument(f"--{prefix}model", default=None, metavar="PKG.MODULE:FACTORY",
                       help="your own model: a callable in a module on your PYTHONPATH (imported: it runs your "
                            "code) that returns an nn.Module taking B×C×H×W pixels in [0, 1]")
    group.add_argument(f"--{prefix}model-args", nargs="+", default=None, metavar="KEY=VALUE",
                       help="keyword arguments of the factory; values read as Python literals (3, 0.5, True, "
                            "[64, 128], 'text'), else kept as strings")
    group.add_argument(f"--{prefix}weights", type=Path, default=None, metavar="FILE",
                       help="state dict for --model (torch.save of model.state_dict(), also nested under "
                            "model_state_dict / state_dict / model_state), read with weights_only=True")
    group.add_argument(f"--{prefix}normalize", default=None, metavar="NAME|MEAN,.../STD,...",
                       help="wrap the model in Normalized when it expects normalised input: imagenet, cifar10, "
                            "mnist, or per-channel means / standard deviations, e.g. "
                            "0.485,0.456,0.406/0.229,0.224,0.225 (images stay in [0, 1])")
    group.add_argument(f"--{prefix}output", default=None, metavar="INDEX|KEY",
                       help="for a model returning a tuple or dict: the position (0, -1) or key (logits) of its "
                            "logits")


def model_from_args(args: argparse.Namespace, device: Any, *, prefix: str = "", checkpoint_attr: str = "checkpoint",
                    checkpoint_flag: str = "--checkpoint", required: bool = True) -> tuple[Any, dict] | None:
    """The model named by the flags of :func:`add_model_flags`, and its record for the JSON output.

    Args:
        args: The parsed arguments.
        device: Where the model goes.
        prefix: The flags' prefix as an attribute prefix (``"compare_"``).
        checkpoint_attr: The attribute of the checkpoint flag.
        checkpoint_flag: The checkpoint flag, for messages.
        required: Whether one of the two flags must be given (else ``None`` when neither is).

    Returns:
        ``(model in eval mode on device, record)`` or ``None``.

    Raises:
        FreqlensError: Both or (when required) neither of the checkpoint flag and ``--model``, ``--weights``
            or ``--model-args`` without ``--model``, or any loading error (one line).
    """
    from freqlens.models.user import load_model_file, load_user_model
    from freqlens.utils.output import parse_output

    flag = f"--{prefix.replace('_', '-')}"
    checkpoint = getattr(args, checkpoint_attr)
    spec = getattr(args, f"{prefix}model")
    weights, model_args = getattr(args, f"{prefix}weights"), getattr(args, f"{prefix}model_args")
    normalize, output = getattr(args, f"{prefix}normalize"), getattr(args, f"{prefix}output")
    if checkpoint is not None and spec is not None:
        raise FreqlensError(f"give {checkpoint_flag} or {flag}model, not both")
    if checkpoint is None and spec is None:
        if required:
            raise FreqlensError(f"give the model: {checkpoint_flag} FILE|zoo:NAME or {flag}model PKG.MODULE:FACTORY")
        return None
    selector = None if output is None else parse_output(output)
    if spec is None:
        if weights is not None or model_args is not None:
            raise FreqlensError(f"{flag}weights and {flag}model-args go with {flag}model, not {checkpoint_flag}")
        return load_model_file(checkpoint, normalize=normalize, output=selector, map_location=device)
    return load_user_model(spec, weights=weights, model_args=model_args or [], normalize=normalize, output=selector,
                           map_location=device)

