"""Small helpers shared by several layers (atomic file writes)."""

from freqlens.utils.io import atomic_save_torch, atomic_write_bytes, atomic_write_json, atomic_write_text

__all__ = ["atomic_save_torch", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]
