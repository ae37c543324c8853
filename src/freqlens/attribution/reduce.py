"""Channel reduction of attribution maps: ``B×C×H×W`` → ``B×H×W`` (shared with the metrics)."""

from freqlens.utils.tensors import REDUCTIONS, reduce_channels

__all__ = ["REDUCTIONS", "reduce_channels"]
