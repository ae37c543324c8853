"""Model zoo for 28/32-pixel classifiers, input normalisation, pooling swap, anti-aliased twins and checkpoints.

``build(name, in_channels, num_classes)`` makes ``mlp, fcnn, lenet, vgg11, vgg16, resnet18,
resnet_small, vit_tiny, convnext_tiny``; every model takes ``B×C×H×W`` pixels in [0, 1] (wrap with
:class:`Normalized` or pass ``mean``/``std``) and carries the spec from which :func:`load` rebuilds it.
Two twins of a model keep its weights and shapes: :func:`swap_pooling` (max pools and strided convolutions
-> average pooling; ``build(..., pooling="avg")``) and :func:`antialias` (Zhang 2019: every strided
convolution / pool becomes its stride-1 version followed by :class:`BlurPool2d`, a binomial blur then
subsampling; ``build(..., antialias=3)``, ``freqlens train --antialias 3``).
:func:`register` adds your own architectures to :func:`build`; :func:`load_user_model` and
:func:`load_model_file` load your own model (factory + state dict, TorchScript, ``torch.export``), and
:class:`SelectOutput` picks the logits of a model that returns a tuple or dict.
:func:`model_for_dataset` sizes a zoo model for a dataset (channels, classes, image size, normalisation).
"""

from freqlens.models.blurpool import BlurPool2d, antialias
from freqlens.models.checkpoint import checkpoint_dict, load, load_state, read_checkpoint, save_model
from freqlens.models.for_dataset import model_for_dataset
from freqlens.models.normalized import Normalized
from freqlens.models.pooling import swap_pooling
from freqlens.models.registry import (
    MODEL_NAMES,
    build,
    features,
    model_spec,
    num_parameters,
    register,
    registered_names,
    unregister,
)
from freqlens.models.user import NORMALIZATIONS, load_model_file, load_user_model
from freqlens.utils.output import SelectOutput

__all__ = [
    "MODEL_NAMES",
    "NORMALIZATIONS",
    "BlurPool2d",
    "Normalized",
    "SelectOutput",
    "antialias",
    "build",
    "checkpoint_dict",
    "features",
    "load",
    "load_model_file",
    "load_state",
    "load_user_model",
    "model_for_dataset",
    "model_spec",
    "num_parameters",
    "read_checkpoint",
    "register",
    "registered_names",
    "save_model",
    "swap_pooling",
    "unregister",
]
