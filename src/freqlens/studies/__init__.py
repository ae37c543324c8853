"""One module per study: config dataclass -> run -> artefacts (json / png) -> report."""

from freqlens.studies.base import (
    SCALES,
    Claim,
    check_scale,
    compare,
    config_hash,
    load_config,
    trained_model,
    write_results,
)
from freqlens.studies.demo import run_demo
from freqlens.studies.noise_tunnel import NoiseTunnelConfig, run_noise_tunnel
from freqlens.studies.registry import STUDIES, StudySpec, get_study, run_study

__all__ = [
    "SCALES",
    "STUDIES",
    "Claim",
    "NoiseTunnelConfig",
    "StudySpec",
    "check_scale",
    "compare",
    "config_hash",
    "get_study",
    "load_config",
    "run_demo",
    "run_noise_tunnel",
    "run_study",
    "trained_model",
    "write_results",
]
