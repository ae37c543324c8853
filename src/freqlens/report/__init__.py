"""freqlens.report (see DESIGN.md)."""
