"""A found architecture as model files: a torch.export program or an ONNX model, the weights
and a JSON of metadata (`files`), with first weights that are fresh, inherited from a supernet,
or selected from a larger model (`weight_selection`)."""
from nas.export.files import (MODEL_FORMAT, PROGRAM_FORMATS, ExportedFiles, export_paths,
                              load_model, load_program, read_metadata, save_model)
from nas.export.onnx_model import read_onnx_metadata

__all__ = ["MODEL_FORMAT", "PROGRAM_FORMATS", "ExportedFiles", "export_paths", "load_model",
           "load_program", "read_metadata", "read_onnx_metadata", "save_model"]
