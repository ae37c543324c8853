"""One module per study: config dataclass -> run -> artefacts (json / png) -> report."""

from freqlens.studies.demo import DemoConfig, run_demo

__all__ = ["DemoConfig", "run_demo"]
