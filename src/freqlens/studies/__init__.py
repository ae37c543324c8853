"""freqlens.studies (see DESIGN.md)."""
