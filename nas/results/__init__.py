"""Run directories and atomic file writes."""
from nas.results.run_dir import (RunDir, atomic_torch_save, atomic_write_bytes, atomic_write_csv,
                                 atomic_write_json, atomic_write_text, load_checkpoint)

__all__ = ["RunDir", "atomic_torch_save", "atomic_write_bytes", "atomic_write_csv",
           "atomic_write_json", "atomic_write_text", "load_checkpoint"]
