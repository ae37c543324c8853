"""freqlens.data (see DESIGN.md)."""
