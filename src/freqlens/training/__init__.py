"""freqlens.training: the training loop and the training modes (seed 000).

``train(model, train_set, val_set, mode=Standard(), epochs=10, batch_size=64, lr=1e-3, out_dir=...,
resume=False)`` trains with Adam by default, keeps ``best.pt`` (best validation accuracy), ``last.pt``
and ``history.json`` (atomic writes) and resumes bit for bit; ``evaluate(model, dataset)`` gives the
loss and accuracy. A :class:`TrainingMode` picks the batch each optimiser step sees: :class:`Standard`,
:class:`NoiseModulation` / :class:`Modulational` (seed 000), :class:`Adversarial` (PGD-AT, fast FGSM-AT).
"""

from freqlens.training.adversarial import Adversarial, FastFGSM, PGDTraining
from freqlens.training.augment import AUGMENTATIONS, TrainingConfigError, augment_batch
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
    "TrainingConfigError",
    "TrainingMode",
    "augment_batch",
    "describe_mode",
    "evaluate",
    "evaluating",
    "modulate",
    "sample_noise",
    "train",
]
