"""freqlens.spectral (see DESIGN.md)."""
