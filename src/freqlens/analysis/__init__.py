"""freqlens.analysis (see DESIGN.md)."""
