"""freqlens.models (see DESIGN.md)."""
