"""freqlens.attribution (see DESIGN.md)."""
