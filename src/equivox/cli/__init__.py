"""Command line interface: ``equivox train | canonicalize | evaluate | predict | demo | check-equivariance | data |
nnunet``, one module per command (``equivox.cli.train``, ...).

Every command has ``--help``, which shows every option's default and choices. The options of ``train``,
``canonicalize`` and ``demo`` are generated from :class:`equivox.config.TrainConfig`'s fields (their help text,
choices and names: ``--epochs`` is the YAML key ``epochs``; :mod:`.config_options`). One dialect across the commands:
the trained model is the positional ``model`` (evaluate, predict, canonicalize, check-equivariance), the rotations
scored or checked are ``--elements``, a centre crop is ``--val-crop``, an item limit ``--max-items``, the output
folder ``--out``; the older spellings (``--checkpoint``, evaluate's ``--group``, ``--crop``, ``--max-test``) still
work, hidden, with a one-line note. Options are matched exactly (no abbreviations): a misspelt one ends with exit code
2 and ``unknown option --epoch; did you mean --epochs?``. ``train``, ``canonicalize`` and ``demo`` read a YAML file
via ``--config`` (flat keys or sections; options given on the command line win over the file; a ``model:`` mapping
and repeated ``--model-arg key=value`` give any constructor argument of the network).

Errors: a user error -- a bad option or value (argparse, :class:`~equivox.config.ConfigError`), bad or missing data
(:class:`~equivox.data.DataError`, ``FileNotFoundError``, ``NotADirectoryError``), or a problem a command finds
(:class:`CLIError`); all :class:`~equivox.config.UserError` s -- ends with exit code 2 and one line ``equivox: error:
...`` naming the problem (``--debug`` shows the traceback instead). Any other exception is an internal error: it
propagates with its traceback.
"""
from __future__ import annotations

import sys
import warnings
from typing import Optional, Sequence

from ..config.errors import ConfigError, UserError
from ..console import one_line_warning as _one_line_warning
from . import canonicalize, check_equivariance, datasets, demo, evaluate, nnunet, predict, train
from ._common import CLIError
from ._parsing import Parser, all_parsers
from .config_options import config_defaults, parse_model_args, train_config_from_args
from .demo import demo_settings

__all__ = ["main", "build_parser", "train_config_from_args", "parse_model_args", "CLIError", "UserError",
           "ConfigError", "user_errors", "COMMANDS", "config_defaults", "demo_settings", "all_parsers"]

#: the command modules, in the order ``equivox --help`` lists them; each has ``NAME``, ``add_parser(sub)``, ``run``
COMMANDS = (train, evaluate, predict, demo, canonicalize, check_equivariance, datasets, nnunet)
_RUN = {m.NAME: m.run for m in COMMANDS}


def user_errors() -> tuple:
    """The exception types that are the user's mistakes: one line, exit code 2 (everything else: a traceback).
    :class:`~equivox.data.DataError` is imported here, not at import time: ``equivox --help`` stays instant."""
    from ..data.errors import DataError

    return (UserError, DataError, FileNotFoundError, NotADirectoryError)


def build_parser() -> Parser:
    """The ``equivox`` argument parser (sub-commands: train, evaluate, predict, demo, canonicalize,
    check-equivariance, data, nnunet)."""
    parser = Parser(prog="equivox", description="Rotation-equivariant 3D CNNs: train, evaluate under rotations, "
                                                "check equivariance, manage bundled data.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``equivox`` command. Returns the exit code (0 ok, 2 user error, 130 interrupted); an
    internal error propagates with its traceback."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2, message already printed)
        return int(e.code or 0)
    from ._common import quiet_libraries

    quiet_libraries()
    formatwarning, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        return int(_RUN[args.command](args) or 0)
    except KeyboardInterrupt:
        print("equivox: interrupted", file=sys.stderr)
        return 130
    except user_errors() as err:
        if args.debug:
            raise
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"equivox: error: {msg}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = formatwarning  # main() called from Python leaves the caller's format as it was
