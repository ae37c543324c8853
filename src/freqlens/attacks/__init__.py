"""freqlens.attacks (see DESIGN.md)."""
