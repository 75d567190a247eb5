"""Run directories and atomic file writes."""
from nas.runs.run_dir import (RunDir, atomic_torch_save, atomic_write_bytes, atomic_write_csv,
                             atomic_write_json, atomic_write_text, exclusive_lock,
                             file_checksum, load_checkpoint)

__all__ = ["RunDir", "atomic_torch_save", "atomic_write_bytes", "atomic_write_csv",
           "atomic_write_json", "atomic_write_text", "exclusive_lock", "file_checksum",
           "load_checkpoint"]
