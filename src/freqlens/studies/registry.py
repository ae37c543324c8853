"""The four studies by command-line name, loaded lazily (a study imports matplotlib and its analyses only
when it runs).

Every study module defines ``STUDY``, ``TITLE``, a frozen config dataclass with ``for_scale(scale)`` and
``run_<module>(out_dir, config=None, scale="demo", *, cache_dir=None, progress=False, command=None)``
returning the path of ``out_dir/<STUDY>/results.json``; ``progress``: tqdm bars on stderr, off by default
as everywhere in the library (``freqlens study`` turns them on unless ``--quiet``).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from freqlens.errors import FreqlensError

RUNNER_ARGS = {
    "out_dir": "the output folder: the study writes ``out_dir/<STUDY>/`` (results.json, PNGs)",
    "config": "the study's frozen config dataclass; ``None``: ``<Config>.for_scale(scale)``",
    "scale": "``demo``, ``cpu`` or ``paper``: the preset used when ``config`` is not given",
    "cache_dir": "where models trained for the study are cached (default ``out_dir/cache``; shared by the "
                 "studies, so a model several of them ask for is trained once)",
    "progress": "tqdm bars on stderr (off by default; ``freqlens study`` turns them on unless ``--quiet``)",
    "command": "the command line recorded in ``results.json`` (default ``freqlens study <STUDY> --out OUT``)",
}
"""The arguments of every study runner ``run_<module>(out_dir, config=None, scale="demo", *, cache_dir=None,
progress=False, command=None) -> Path`` (the path of ``results.json``), documented once."""


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """Where a study lives: ``module`` (under :mod:`freqlens.studies`), its config class and run function."""

    name: str
    module: str
    config: str
    run: str

    def _module(self) -> Any:
        return importlib.import_module(f"freqlens.studies.{self.module}")

    def config_class(self) -> type:
        return getattr(self._module(), self.config)

    def runner(self) -> Callable[..., Path]:
        return getattr(self._module(), self.run)


#: In the order ``freqlens demo`` runs them (and the report shows them).
STUDIES: dict[str, StudySpec] = {
    spec.name: spec
    for spec in (
        StudySpec("noise-modulation", "noise_modulation", "NoiseModulationConfig", "run_noise_modulation"),
        StudySpec("forgrad", "forgrad", "ForgradConfig", "run_forgrad"),
        StudySpec("frequency-robustness", "frequency_robustness", "FrequencyRobustnessConfig",
                  "run_frequency_robustness"),
        StudySpec("noise-tunnel", "noise_tunnel", "NoiseTunnelConfig", "run_noise_tunnel"),
    )
}


def get_study(name: str) -> StudySpec:
    """The :class:`StudySpec` of ``name``; unknown names -> :class:`FreqlensError` listing the known ones."""
    try:
        return STUDIES[name]
    except KeyError:
        raise FreqlensError(f"unknown study {name!r}; choose one of {', '.join(STUDIES)}") from None


def run_study(
    name: str,
    out_dir: str | Path,
    scale: str = "demo",
    *,
    config_file: str | Path | None = None,
    overrides: tuple[str, ...] | list[str] = (),
    cache_dir: str | Path | None = None,
    progress: bool = False,
    command: str | None = None,
) -> Path:
    """Run study ``name`` at ``scale`` with the TOML ``config_file`` and ``key=value`` ``overrides``
    applied to the scale preset; returns the path of its ``results.json``."""
    from freqlens.studies.base import check_scale, load_config

    spec = get_study(name)
    check_scale(scale)
    config_class = spec.config_class()
    config = load_config(config_class, config_class.for_scale(scale), config_file, overrides)
    return spec.runner()(out_dir, config, scale, cache_dir=cache_dir, progress=progress, command=command)
