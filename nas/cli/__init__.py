"""`nas` on the command line: a module per subcommand (`supernet`, `search`, `export`,
`train`, `groundtruth`, `correlate`, `bench`), each adding its arguments and turning them into
configs for one `nas.api` call; the options they share are defined once in `options`."""
from nas.cli.main import build_parser, main
from nas.cli.options import configs as _configs

__all__ = ["build_parser", "main"]
