"""The argument parser of the ``equivox`` command: exact option names, ``unknown option --epoch; did you mean
--epochs?``, every default shown in ``--help``, on/off flags (``--x`` / ``--no-x``), hidden old spellings, and the
value types of the options (``2,4``, ``1.5,1.5,3``, ``N|auto``, ``true|false``)."""
from __future__ import annotations

import argparse
import difflib
import sys
from typing import Any, List, Optional, Sequence

__all__ = ["Parser", "HelpFormatter", "add_flag", "renamed", "Renamed", "spelled", "all_parsers", "shown",
           "parse_bool", "parse_ints", "parse_names", "parse_floats3", "parse_devices", "VALUE_TYPES"]

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def shown(value: Any) -> str:
    """A value as the command line spells it: ``[2, 4]`` -> ``2,4``, ``True`` -> ``on``, ``None`` -> ``none``."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(shown(v) for v in value)
    return str(value)


# ============================================================================================ value types
def parse_names(text: str) -> List[str]:
    vals = [v.strip() for v in str(text).split(",")]
    if not all(vals):
        raise argparse.ArgumentTypeError(f"expected comma-separated non-empty names, got {text!r}")
    return vals


def parse_ints(text: str) -> List[int]:
    try:
        vals = [int(v) for v in str(text).replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    return vals


def parse_bool(text: str) -> bool:
    if str(text).lower() in _TRUE:
        return True
    if str(text).lower() in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_floats3(text: str):
    try:
        vals = tuple(float(v) for v in str(text).replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 1 or 3 comma-separated numbers (mm), got {text!r}") from None
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3 or min(vals) <= 0:
        raise argparse.ArgumentTypeError(f"expected 1 or 3 positive comma-separated numbers (mm), got {text!r}")
    return vals


def parse_devices(text: str):
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"devices must be an integer or 'auto', got {text!r}") from None


#: the argparse ``type`` of each :class:`~equivox.config.Option` kind (``flag`` and ``mapping`` are actions)
VALUE_TYPES = {"int": int, "float": float, "str": str, "ints": parse_ints, "names": parse_names,
               "floats3": parse_floats3, "devices": parse_devices}


# ============================================================================================ help
class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to every option whose help does not state its default already: the option's
    ``default_text`` (the config options, whose argparse default is ``None`` so that a YAML ``--config`` can set them)
    or its argparse default. On/off options read as flags (``--x, --no-x``)."""

    def _get_help_string(self, action):
        help_ = action.help or ""
        text = default_text(action)
        if text is None or "default" in help_.lower():
            return help_
        return f"{help_} (default: {text.replace('%', '%%')})"

    def _format_action_invocation(self, action):
        forms = getattr(action, "flag_forms", None)
        return ", ".join(forms) if forms else super()._format_action_invocation(action)

    def _format_args(self, action, default_metavar):
        return "" if getattr(action, "flag_forms", None) else super()._format_args(action, default_metavar)

    def _format_usage(self, usage, actions, groups, prefix):
        return super()._format_usage(usage, actions, groups, prefix).replace(" ]", "]")


def default_text(action) -> Optional[str]:
    """What ``--help`` shows as ``action``'s default, ``None`` for nothing."""
    if action.default is argparse.SUPPRESS or action.help is argparse.SUPPRESS:
        return None
    text = getattr(action, "default_text", None)
    if text is not None:
        return text
    if action.nargs == 0:  # a flag (store_true / store_const)
        return "on" if action.default is True else "off"
    return None if action.default is None else shown(action.default)


# ============================================================================================ options
class Renamed(argparse.Action):
    """A hidden old spelling of an option: stores into the new option's ``dest`` (through ``convert``) and prints
    one line saying what to write instead."""

    def __init__(self, option_strings, dest, new: str = "", convert=None, **kwargs):
        kwargs.setdefault("default", argparse.SUPPRESS)
        kwargs["help"] = argparse.SUPPRESS
        super().__init__(option_strings, dest, **kwargs)
        self.new, self.convert = new, convert

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"equivox: note: {option_string} is deprecated; {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, self.convert(values) if self.convert else values)
        setattr(namespace, f"_spelled_{self.dest}", option_string)


def renamed(p: argparse.ArgumentParser, old: str, new: str, dest: str, **kwargs) -> None:
    """Add ``old`` as a hidden alias of the option ``new`` (same ``dest``)."""
    p.add_argument(old, dest=dest, action=Renamed, new=f"use {new} (same meaning)", **kwargs)


def spelled(args, dest: str, flag: str) -> str:
    """The spelling the user gave for option ``dest`` (an old alias or ``flag``), for messages."""
    return getattr(args, f"_spelled_{dest}", flag)


def add_flag(p: argparse.ArgumentParser, flag: str, dest: str, help_: str) -> argparse.Action:
    """An on/off option: ``--x`` (on) and ``--no-x`` (off); ``--x true|false`` (the older form) still works
    (:meth:`Parser.parse_known_args` spells it ``--x`` / ``--no-x``). Default ``None`` (unset: the YAML file or the
    config's default decides)."""
    action = p.add_argument(flag, dest=dest, action="store_const", const=True, default=None, help=help_)
    action.flag_forms = (flag, "--no-" + flag[2:])
    p.add_argument("--no-" + flag[2:], dest=dest, action="store_const", const=False, default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)
    return action


class Parser(argparse.ArgumentParser):
    """argparse with exact option names (no abbreviations), the defaults shown in ``--help``, and unknown options
    answered with the closest known name: ``unknown option --epoch; did you mean --epochs?`` (exit code 2)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        args = self._spell_flag_values(list(sys.argv[1:] if args is None else args))
        ns, extras = super().parse_known_args(args, namespace)
        unknown = [a for a in extras if a.startswith("--") and len(a) > 2]
        if unknown:
            self.error(self.unknown_option_message(unknown[0]))
        return ns, extras

    def _spell_flag_values(self, args: List[str]) -> List[str]:
        """The older ``--x true|false`` / ``--x=false`` of an on/off option as ``--x`` / ``--no-x``. A word after
        ``--x`` that is not true/false is the next argument where this parser takes positionals, else a mistake."""
        forms = {a.flag_forms[0]: a.flag_forms for a in self._actions if getattr(a, "flag_forms", None)}
        if not forms:
            return args
        positionals = any(not a.option_strings and not isinstance(a, argparse._SubParsersAction)
                          for a in self._actions)
        out, i = [], 0
        while i < len(args):
            arg = args[i]
            name, eq, value = arg.partition("=")
            if name in forms and (eq or (i + 1 < len(args) and not args[i + 1].startswith("-")
                                         and (not positionals or args[i + 1].lower() in _TRUE + _FALSE))):
                if not eq:
                    value, i = args[i + 1], i + 1
                try:
                    out.append(forms[name][0] if parse_bool(value) else forms[name][1])
                except argparse.ArgumentTypeError as err:
                    self.error(f"argument {'/'.join(forms[name])}: {err}")
            else:
                out.append(arg)
            i += 1
        return out

    def error(self, message: str):
        """One line (not the whole usage, which buries the problem for ``train``'s 50 options), exit code 2."""
        hint = "" if "--help" in message else f" (see '{self.prog} --help')"
        self.exit(2, f"{self.prog}: error: {message}{hint}\n")

    def unknown_option_message(self, arg: str) -> str:
        name = arg.split("=", 1)[0]
        known = [s for a in self._actions if a.help is not argparse.SUPPRESS for s in a.option_strings
                 if s.startswith("--")]
        for a in self._actions:  # a --flag / --no-flag pair: both spellings are known names
            if a.help is not argparse.SUPPRESS:
                known += list(getattr(a, "flag_forms", ()) or ())
        close = difflib.get_close_matches(name, sorted(set(known)), n=1, cutoff=0.6)
        if close:
            return f"unknown option {name}; did you mean {close[0]}?"
        return f"unknown option {name} (see '{self.prog} --help')"


def all_parsers(parser: argparse.ArgumentParser, prefix: Sequence[str] = ()):
    """``[(command words, parser)]`` for ``parser`` and every sub-command parser below it."""
    out = [(list(prefix), parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += all_parsers(sub, list(prefix) + [name])
    return out
