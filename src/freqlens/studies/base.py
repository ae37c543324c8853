"""The study framework: claims checked from numbers, scale presets, configs from TOML / ``key=value``,
the models a study analyses (the zoo's, or trained once per setting by
:func:`freqlens.training.trained_model`, whose :func:`config_hash` is re-exported here), atomic
``results.json``.

A study is a config dataclass -> ``run_<study>(out_dir, config)`` -> ``out_dir/<study>/results.json``
plus PNG figures, read by :func:`freqlens.report.write_report`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
import time
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import tomllib
from typing_extensions import Self

from freqlens.data.sampling import pick_indices
from freqlens.errors import FreqlensError
from freqlens.training.cache import config_hash, trained_model
from freqlens.utils import atomic_write_json

__all__ = [
    "SCALES",
    "Claim",
    "StudyModel",
    "StudyRun",
    "StudyTraining",
    "check_scale",
    "compare",
    "config_hash",
    "load_config",
    "mode_tag",
    "seconds_per_step",
    "study_folders",
    "study_model",
    "study_runner",
    "trained_model",
    "training_mean_image",
    "write_results",
]

SCALES = ("demo", "cpu", "paper")

ConfigT = TypeVar("ConfigT")
TrainingT = TypeVar("TrainingT", bound="StudyTraining")

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def compare(left: float, relation: str, right: float) -> bool:
    """``left <relation> right`` for ``relation`` in ``<``, ``<=``, ``>``, ``>=``."""
    if relation not in _COMPARISONS:
        raise ValueError(f"unknown relation {relation!r}; expected one of {sorted(_COMPARISONS)}")
    return bool(_COMPARISONS[relation](float(left), float(right)))


@dataclasses.dataclass(frozen=True)
class Claim:
    """A claim of a seed paper checked on measured numbers: ``holds`` is ``left <relation> right``,
    computed here, never given by hand."""

    claim: str
    seed: str
    figure: str
    left_label: str
    left: float
    relation: str
    right_label: str
    right: float

    @property
    def holds(self) -> bool:
        return compare(self.left, self.relation, self.right)

    @property
    def measured(self) -> str:
        return f"{self.left_label} = {self.left:.6g}, {self.right_label} = {self.right:.6g}"

    @property
    def expected(self) -> str:
        return f"{self.left_label} {self.relation} {self.right_label}"

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` form: ``claim, seed, figure, measured, expected, holds`` plus the raw
        ``left``, ``relation``, ``right`` numbers (so readers can recheck ``holds``)."""
        return {
            "claim": self.claim,
            "seed": self.seed,
            "figure": self.figure,
            "measured": self.measured,
            "expected": self.expected,
            "holds": self.holds,
            "left": float(self.left),
            "relation": self.relation,
            "right": float(self.right),
        }


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise FreqlensError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    return scale


def _convert(key: str, text: str, kind: Any) -> Any:
    try:
        if kind is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is str:
            return text
    except ValueError:
        raise FreqlensError(f"config key {key!r}: cannot read {text!r} as {kind.__name__}") from None
    raise FreqlensError(f"config key {key!r} of type {kind} cannot be set from text")


def _check_value(key: str, value: Any, kind: Any) -> Any:
    """A TOML value checked against the field type (ints are accepted for floats)."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in (bool, int, float, str) and (type(value) is not kind):
        raise FreqlensError(f"config key {key!r} must be {kind.__name__}, got {value!r}")
    return value


def load_config(
    cls: type[ConfigT],
    base: ConfigT | None = None,
    toml_file: str | Path | None = None,
    overrides: Iterable[str] = (),
) -> ConfigT:
    """``base`` (default ``cls()``) updated from the top-level keys of ``toml_file`` then from
    ``key=value`` strings, values converted to the dataclass field types. Unknown keys, bad values,
    unreadable files -> :class:`FreqlensError`."""
    config = base if base is not None else cls()
    hints = typing.get_type_hints(cls)
    names = {field.name for field in dataclasses.fields(cls)}
    updates: dict[str, Any] = {}
    if toml_file is not None:
        try:
            table = tomllib.loads(Path(toml_file).read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise FreqlensError(f"cannot read config file {toml_file}: {error}") from None
        for key, value in table.items():
            if key not in names:
                raise FreqlensError(f"unknown config key {key!r} in {toml_file}; known: {', '.join(sorted(names))}")
            updates[key] = _check_value(key, value, hints[key])
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise FreqlensError(f"expected key=value, got {item!r}")
        if key not in names:
            raise FreqlensError(f"unknown config key {key!r}; known: {', '.join(sorted(names))}")
        updates[key] = _convert(key, text.strip(), hints[key])
    return dataclasses.replace(config, **updates)


def study_folders(out_dir: str | Path, study: str, cache_dir: str | Path | None = None) -> tuple[Path, Path, Path]:
    """``(out_dir, out_dir/<study> created, cache_dir or out_dir/cache)`` as paths: where a study writes."""
    out_dir = Path(out_dir)
    study_dir = out_dir / study
    study_dir.mkdir(parents=True, exist_ok=True)
    return out_dir, study_dir, Path(cache_dir) if cache_dir is not None else out_dir / "cache"


@dataclasses.dataclass(frozen=True)
class StudyRun:
    """What a study's body receives from the runner :func:`study_runner` builds.

    Attributes:
        config: the validated config (the given one, or the scale's preset).
        out_dir: the output folder.
        study_dir: ``out_dir/<STUDY>``, created.
        cache_dir: where trained models are cached.
        progress: whether to show tqdm bars.
        started: ``time.perf_counter()`` when the run began (for the summary's total seconds).
    """

    config: Any
    out_dir: Path
    study_dir: Path
    cache_dir: Path
    progress: bool
    started: float


def study_runner(
    study: str, title: str, config_class: Any, validate: Callable[[Any], None],
    body: Callable[[StudyRun], tuple[str, dict[str, Any]]],
) -> Callable[..., Path]:
    """The public runner of a study, one definition for all (the protocol of
    :data:`freqlens.studies.registry.RUNNER_ARGS`).

    The runner takes the config (default ``config_class.for_scale(scale)``), validates it, creates the study
    folder, starts the clock, calls ``body`` and writes ``results.json``: ``study``, ``title``, the
    ``description`` the body returns, ``command`` and ``config`` first, then the body's keys.

    Args:
        study: the study's command-line name (``"noise-tunnel"``).
        title: its title in the report.
        config_class: its frozen config dataclass (with ``for_scale(scale)``).
        validate: raises :class:`FreqlensError` for an invalid config, before any work.
        body: ``StudyRun -> (description, results)``: the experiments, their figures, tables and claims.

    Returns:
        ``run(out_dir, config=None, scale="demo", *, cache_dir=None, progress=False, command=None) -> Path``
        (the path of ``results.json``).
    """

    def run(out_dir: str | Path, config: Any = None, scale: str = "demo", *, cache_dir: str | Path | None = None,
            progress: bool = False, command: str | None = None) -> Path:
        config = config or config_class.for_scale(scale)
        validate(config)
        out_dir, study_dir, cache_dir = study_folders(out_dir, study, cache_dir)
        description, results = body(StudyRun(config, out_dir, study_dir, cache_dir, progress, time.perf_counter()))
        head = {"study": study, "title": title, "description": description,
                "command": command or f"freqlens study {study} --out {out_dir}", "config": dataclasses.asdict(config)}
        return write_results(study_dir, {**head, **results})

    run.__doc__ = (f"Run the {study} study into ``out_dir/{study}`` and return the path of its ``results.json``; "
                   f"``config`` defaults to ``{config_class.__name__}.for_scale(scale)``, the other arguments are "
                   "those of every study runner (:data:`freqlens.studies.registry.RUNNER_ARGS`).")
    return run


def write_results(study_dir: str | Path, results: Mapping[str, Any]) -> Path:
    """Write ``study_dir/results.json`` atomically (numbers converted to plain floats)."""
    return atomic_write_json(Path(study_dir) / "results.json", json.loads(json.dumps(results, default=float)))


# ------------------------------------------------------------------------------- models of a study
def mode_tag(mode: Any = None) -> str:
    """The zoo's name for a training mode: ``standard``, ``nm0.5-gaussian`` (noise modulation β, carrier),
    ``pgd-at`` (Madry PGD adversarial training) or ``fgsm-at`` (fast FGSM-AT)."""
    from freqlens.training import describe_mode

    described = {"name": "standard"} if mode is None else describe_mode(mode)
    if described["name"] == "noise-modulation":
        return f"nm{described['beta']:g}-{described['noise']}"
    if described["name"] == "adversarial":
        return "fgsm-at" if described.get("attack") == "FastFGSM" else "pgd-at"
    return str(described["name"])


@dataclasses.dataclass(frozen=True)
class StudyModel:
    """A model a study analyses and where it came from.

    Attributes:
        model: the network, in eval mode.
        source: ``"zoo:NAME"`` (shipped weights) or the path of the checkpoint trained for the study.
        accuracy: test accuracy (zoo: of the shipped weights on the full test set; trained: the best
            validation accuracy of its run).
        robust_accuracy: PGD-20 accuracy recorded in the zoo, else ``None``.
        epochs: epochs trained.
        seconds_per_epoch: mean wall time of a training epoch (zoo: recorded minutes / epochs, measured on
            the machine that trained the zoo, possibly shared with other jobs).
        reused: the weights were not trained by this call (zoo, or the study cache).
    """

    model: Any
    source: str
    accuracy: float
    robust_accuracy: float | None
    epochs: int
    seconds_per_epoch: float | None
    reused: bool

    def analysed(self, role: str) -> dict[str, Any]:
        """The report's row for this model (``results.json`` ``analysed_models``): ``role`` in the study
        (e.g. ``"noise modulation"``), where it came from, its accuracies."""
        return {"role": role, "model": self.source, "test accuracy": round(self.accuracy, 4),
                "robust accuracy": None if self.robust_accuracy is None else round(self.robust_accuracy, 4)}

    def describe(self) -> dict[str, Any]:
        """JSON-able description (for ``results.json`` and the report's model table)."""
        return {"source": self.source, "accuracy": self.accuracy, "robust_accuracy": self.robust_accuracy,
                "epochs": self.epochs, "seconds_per_epoch": self.seconds_per_epoch, "reused": self.reused}


def study_model(
    name: str,
    dataset: str,
    epochs: int,
    seed: int,
    cache_dir: str | Path,
    *,
    zoo: str = "",
    retrain: bool = False,
    mode: Any = None,
    progress: bool = False,
    **training: Any,
) -> StudyModel:
    """The ``name`` model of a study: the zoo's ``{name}-{zoo}-{mode_tag(mode)}`` when ``zoo`` names the
    zoo's training dataset (``"cifar10"``, ``"mnist"``) and ``retrain`` is false; otherwise trained (and
    cached) by :func:`trained_model` on ``dataset`` with ``epochs``, ``seed`` and ``training`` settings.

    Args:
        name: The model's name (:func:`freqlens.models.build`).
        dataset: The dataset a model trained for the study learns from.
        epochs: Its epochs.
        seed: Its seed.
        cache_dir: The training cache.
        zoo: The zoo's training dataset of the model (``""``: train for the study).
        retrain: Train for the study even when ``zoo`` is given.
        mode: The training mode (``None``: standard training).
        progress: Progress bars on stderr while training.
        **training: More settings of :func:`trained_model` (``batch_size``, ``lr``, ``n_train``...).

    Returns:
        The model in eval mode, where it came from, its accuracy and training time.

    Raises:
        FreqlensError: the zoo has no such entry (the message says how to train it instead).
    """
    if zoo and not retrain:
        from freqlens.models import zoo as model_zoo

        zoo_name = f"{name}-{zoo}-{mode_tag(mode)}"
        if zoo_name not in model_zoo.names():
            raise FreqlensError(f"the zoo has no model {zoo_name!r} (see `freqlens zoo list`); train one for the "
                                "study with --set retrain=true, or build it with `freqlens zoo build`")
        item = model_zoo.entry(zoo_name)
        _check_zoo_mode(item.name, item.mode_config, mode)
        minutes = item.minutes
        return StudyModel(model_zoo.load(zoo_name).eval(), f"zoo:{zoo_name}", item.test_accuracy,
                          item.robust_accuracy, item.epochs,
                          None if minutes is None else 60.0 * minutes / max(item.epochs, 1), True)
    trained = trained_model(name, dataset, epochs, seed, cache_dir, mode=mode, progress=progress, **training)
    history = trained.history
    return StudyModel(trained.model.eval(), str(trained.checkpoint),
                      max(float(entry["val_accuracy"]) for entry in history), None, len(history),
                      sum(float(entry["seconds"]) for entry in history) / len(history), trained.reused)


@dataclasses.dataclass(frozen=True)
class StudyTraining:
    """The first settings of every study config: the images studied, where the models come from and how
    they are trained when the zoo does not provide them (a study config derives from this class).
    """

    dataset: str = "demo-cifar10"  # the images studied (its training split trains the study's own models)
    zoo: str = "cifar10"  # the zoo's models trained on this dataset ("" = train them for the study)
    retrain: bool = False  # train afresh (on `dataset`'s training split) even when the zoo has the models
    epochs: int = 10  # when trained for the study
    batch_size: int = 64
    lr: float = 1e-3
    n_train: int = 0  # first n_train training images, 0: all (image folders are sorted by class: prefer 0)
    seed: int = 0  # of the models trained for the study (and of the study's draws unless it says otherwise)

    #: Scale -> the settings that differ from the defaults (the defaults are the ``demo`` scale).
    PRESETS: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    @classmethod
    def for_scale(cls, scale: str) -> Self:
        """The config of a scale: the defaults (``demo``) updated with :attr:`PRESETS` ``[scale]``.

        Args:
            scale: one of :data:`SCALES`.

        Returns:
            The config.

        Raises:
            FreqlensError: an unknown scale.
        """
        return cls(**cls.PRESETS.get(check_scale(scale), {}))

    def check_fields(self, *, counts: Iterable[str] = (), sizes: Iterable[str] = (),
                     rates: Iterable[str] = ()) -> None:
        """Check numeric fields, naming the first one out of its range.

        Args:
            counts: fields that must be ``>= 1``.
            sizes: fields that must be ``>= 0`` (e.g. ``n_train``, where ``0`` means all).
            rates: fields that must be finite and ``> 0``.

        Raises:
            FreqlensError: a field out of its range.
        """
        for name in counts:
            if getattr(self, name) < 1:
                raise FreqlensError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in sizes:
            if getattr(self, name) < 0:
                raise FreqlensError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in rates:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise FreqlensError(f"{name} must be a positive finite number, got {value}")

    def study_model(self, name: str, cache_dir: str | Path, *, mode: Any = None, epochs: int | None = None,
                    progress: bool = False) -> StudyModel:
        """The study's ``name`` model under these settings (:func:`study_model`).

        Args:
            name: the architecture (:func:`freqlens.models.build`).
            cache_dir: the training cache.
            mode: the training mode (``None``: standard training).
            epochs: epochs when trained for the study (``None``: :attr:`epochs`).
            progress: progress bars on stderr while training.

        Returns:
            The model with its origin and accuracy.
        """
        return study_model(name, self.dataset, self.epochs if epochs is None else epochs, self.seed, cache_dir,
                           zoo=self.zoo, retrain=self.retrain, mode=mode, progress=progress,
                           batch_size=self.batch_size, lr=self.lr, n_train=self.n_train or None)


def _check_zoo_mode(name: str, recorded: Mapping[str, Any], mode: Any) -> None:
    """Refuse a zoo model whose training mode differs from the one the study's config asks for (e.g. the
    config's PGD ε is not the ε the zoo model was trained with)."""
    from freqlens.training import describe_mode

    wanted = {"name": "standard"} if mode is None else describe_mode(mode)
    # the attack's class is how the mode was built (PGDTraining in the studies, PGD from `freqlens train`),
    # not what it trains: the zoo name's tag (pgd-at / fgsm-at) and the numbers below say that
    differing = [key for key, value in wanted.items()
                 if key != "attack" and key in recorded and not (recorded[key] == value or (
                     isinstance(value, float) and isinstance(recorded[key], (int, float))
                     and abs(float(recorded[key]) - value) <= 1e-9 * max(1.0, abs(value))))]
    if differing:
        details = ", ".join(f"{key}: zoo {recorded[key]!r}, config {wanted[key]!r}" for key in differing)
        raise FreqlensError(f"zoo model {name!r} was trained with other settings than the study's config ({details}); "
                            "change the config to match or train afresh with --set retrain=true")


def training_mean_image(dataset: str, n_train: int = 0, seed: int = 0) -> Any:
    """x̄ of seed 000's VII: the mean image of the training split of ``dataset`` (of the ``n_train`` images
    :func:`trained_model` draws when given); for the shipped CIFAR-10 sample, which has no training
    split, the mean of the 50,000 CIFAR-10 training images stored with it."""
    from freqlens.data import load_dataset, mean_image

    if dataset == "demo-cifar10":
        from freqlens.data.samples import demo_cifar10_train_mean

        return demo_cifar10_train_mean()
    images = load_dataset(dataset, split="train").images
    if n_train:
        images = images[pick_indices(len(images), n_train, seed)]
    return mean_image(images)


def seconds_per_step(model: Any, mode: Any, images: Any, labels: Any, steps: int = 8) -> float:
    """Wall seconds of one training step of ``mode`` (its batch transform, forward, backward, Adam step)
    on the batch ``images``/``labels``, median of ``steps`` steps after one warm-up, measured on a copy of
    ``model`` (left untouched). Comparable across modes because it is measured on the same machine at
    the same moment — unlike training histories recorded elsewhere or under other load."""
    import copy
    import statistics

    import torch
    import torch.nn.functional as F

    from freqlens.training import Standard

    mode = Standard() if mode is None else mode
    trainee = copy.deepcopy(model).train()
    optimizer = torch.optim.Adam(trainee.parameters(), lr=1e-6)
    generator = torch.Generator(device=images.device).manual_seed(0)
    times = []
    for step in range(steps + 1):
        started = time.perf_counter()
        x = mode.transform(trainee, images, labels, generator=generator).detach()
        trainee.train()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(trainee(x), labels).backward()
        optimizer.step()
        if step:
            times.append(time.perf_counter() - started)
    return statistics.median(times)
