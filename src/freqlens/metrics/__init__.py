"""freqlens.metrics (see DESIGN.md)."""
