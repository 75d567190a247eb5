"""`nas export`: an architecture of a run as a standalone PyTorch model."""
from __future__ import annotations

import argparse

from nas import api
from nas.config import TrainConfig
from nas.export import PROGRAM_FORMATS
from nas.export.initial_weights import INITS

NAME = "export"
HELP = "Export an architecture as a standalone PyTorch (torch.export) or ONNX model."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--arch", default=None,
                        help="architecture string (default: the run's best)")
    parser.add_argument("--out", required=True, metavar="FILE.pt2|FILE.onnx")
    parser.add_argument("--format", default=None, choices=list(PROGRAM_FORMATS),
                        help="pt2 (a torch.export program) or onnx (needs the onnx extra); "
                             "default: the one --out's suffix names")
    parser.add_argument("--init", default="inherit", choices=list(INITS),
                        help="weights from the supernet (inherit), freshly initialised (scratch), "
                             "or selected from a larger trained model (weight-selection, "
                             "--teacher)")
    parser.add_argument("--teacher", default=None, metavar="FILE.pt2",
                        help="with --init weight-selection: an exported model of the same space, "
                             "at least as wide and deep (Xu et al., ICLR 2024)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--device", default=TrainConfig.device)


def run(args: argparse.Namespace) -> None:
    files = api.export(args.run_dir, args.out, args.arch, args.init, args.overwrite, args.device,
                       args.teacher, args.format)
    program = "ONNX" if files.program.suffix == ".onnx" else "torch.export"
    print(f"exported: {files.program} ({program}), {files.state_dict} (weights), "
          f"{files.metadata} (architecture)")
