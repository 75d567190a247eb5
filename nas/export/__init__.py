"""A found architecture as files that load with torch alone (`files`), with first weights that
are fresh, inherited from a supernet, or selected from a larger model (`weight_selection`)."""
from nas.export.files import (MODEL_FORMAT, ExportedFiles, export_paths, load_model,
                              load_program, read_metadata, save_model)

__all__ = ["MODEL_FORMAT", "ExportedFiles", "export_paths", "load_model", "load_program",
           "read_metadata", "save_model"]
