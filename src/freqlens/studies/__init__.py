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
from freqlens.studies.demo import DemoConfig, run_demo
from freqlens.studies.noise_tunnel import NoiseTunnelConfig, run_noise_tunnel

__all__ = [
    "SCALES",
    "Claim",
    "DemoConfig",
    "NoiseTunnelConfig",
    "check_scale",
    "compare",
    "config_hash",
    "load_config",
    "run_demo",
    "run_noise_tunnel",
    "trained_model",
    "write_results",
]
