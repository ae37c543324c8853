"""Small helpers shared by several layers (atomic file writes, output folders)."""

from freqlens.utils.io import (
    atomic_save_torch,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    prepare_output_dir,
    removing_created_dirs_on_error,
)

__all__ = ["atomic_save_torch", "atomic_write_bytes", "atomic_write_json", "atomic_write_text",
           "prepare_output_dir", "removing_created_dirs_on_error"]
