"""freqlens.training (see DESIGN.md)."""
