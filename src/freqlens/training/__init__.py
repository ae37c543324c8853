"""freqlens.training: the training loop, the training modes (seed 000) and the cache of trained models.

``train(model, train_set, val_set, mode=Standard(), epochs=10, batch_size=64, lr=1e-3, out_dir=...,
resume=False)`` trains with Adam by default, keeps ``best.pt`` (best validation accuracy), ``last.pt``
and ``history.json`` (atomic writes) and resumes bit for bit; ``evaluate(model, dataset)`` gives the
loss and accuracy. A :class:`TrainingMode` picks the batch each optimiser step sees: :class:`Standard`,
:class:`NoiseModulation` / :class:`Modulational` (seed 000), :class:`Adversarial` (PGD-AT, fast FGSM-AT).
:func:`trained_model` trains a model once per training setting (a cache folder keyed by
:func:`config_hash`) and returns it with its history.
"""

from freqlens.training.adversarial import Adversarial, FastFGSM, PGDTraining
from freqlens.training.augment import AUGMENTATIONS, TrainingConfigError, augment_batch
from freqlens.training.cache import TrainedModel, config_hash, trained_model
from freqlens.training.loop import evaluate, train
from freqlens.training.modes import Standard, TrainingMode, describe_mode, evaluating
from freqlens.training.noise_modulation import NOISES, Modulational, NoiseModulation, modulate, sample_noise

__all__ = [
    "AUGMENTATIONS",
    "NOISES",
    "Adversarial",
    "FastFGSM",
    "Modulational",
    "NoiseModulation",
    "PGDTraining",
    "Standard",
    "TrainedModel",
    "TrainingConfigError",
    "TrainingMode",
    "augment_batch",
    "config_hash",
    "describe_mode",
    "evaluate",
    "evaluating",
    "modulate",
    "sample_noise",
    "train",
    "trained_model",
]
