"""Config fields that describe themselves: :func:`option` declares a field of a config section with its help text,
choices and command-line name (``dataclasses.field(metadata=...)``); :func:`config_options` reads them back as
:class:`Option` records, from which the command line (:mod:`equivox.cli`) generates its options and ``--help``.

One name everywhere: the Python attribute, the YAML key and the command-line option (``epochs`` / ``epochs:`` /
``--epochs``); the few exceptions (``out_dir`` is ``--out``, ``model`` is ``--model-arg KEY=VALUE``) are declared
in the field's metadata.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

__all__ = ["option", "Option", "section_options"]

_MISSING = dataclasses.MISSING


def option(default: Any = _MISSING, help: str = "", *, default_factory: Any = _MISSING,
           choices: Optional[Tuple[str, ...]] = None, other: Optional[str] = None, flag: Optional[str] = None,
           metavar: Optional[str] = None, none_means: Optional[str] = None, default_help: Optional[str] = None,
           kind: Optional[str] = None, invalid: Optional[str] = None) -> Any:
    """A config field (``dataclasses.field``) with its description in ``metadata``.

    Args:
        default, default_factory: as for ``dataclasses.field``.
        help: one line for ``--help`` (and the reference docs).
        choices: the values the field takes (listed as the option's metavar, checked by validation unless ``other``
            is given).
        other: the field takes values outside ``choices`` too; the metavar's placeholder for them (``"MODEL"``).
        flag: the command-line option when it is not ``--`` + the name with ``-`` for ``_`` (``"--out"``).
        metavar: the option's metavar when it is not derived from ``choices``.
        none_means: what the default ``None`` means, for ``--help`` (``"all"``, ``"from the dataset"``).
        default_help: ``--help``'s text for the default instead of the value itself.
        kind: how a command line gives the value when the annotation does not say it (``"devices"``).
        invalid: the validation message for a value outside ``choices`` (default: ``"<name> must be one of ..."``).
    """
    meta = {k: v for k, v in dict(help=help, choices=choices, other=other, flag=flag, metavar=metavar,
                                  none_means=none_means, default_help=default_help, kind=kind,
                                  invalid=invalid).items() if v is not None}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Option:
    """One config field as the YAML file and the command line see it.

    Attributes:
        name: the field (attribute and YAML key). section: the section it belongs to (``"trainer"``).
        default: its default value. help: the ``--help`` line. choices, other: see :func:`option`.
        flag: its command-line option (``--epochs``). metavar: the option's metavar (``{classify,segment}``) or
            ``None`` (argparse's). kind: how the command line gives it: ``"flag"`` (on/off: ``--x`` / ``--no-x``),
            ``"int"``, ``"float"``, ``"str"``, ``"ints"`` (``2,4``), ``"names"`` (``a,b``), ``"floats3"`` (``1.5``
            or ``1,1,3``), ``"mapping"`` (repeatable ``KEY=VALUE``, value as YAML) or ``"devices"`` (N or auto).
        none_means, default_help: see :func:`option`. optional: ``None`` is a valid value.
    """

    name: str
    section: str
    default: Any
    help: str
    choices: Optional[Tuple[str, ...]]
    other: Optional[str]
    flag: str
    metavar: Optional[str]
    kind: str
    none_means: Optional[str]
    default_help: Optional[str]
    invalid: Optional[str]
    optional: bool

    @property
    def closed_choices(self) -> Optional[Tuple[str, ...]]:
        """``choices`` when they are the only values the field takes (validation checks them)."""
        return self.choices if self.choices is not None and self.other is None else None


def _kind(hint: Any) -> Tuple[str, bool]:
    """``(kind, optional)`` of a field's type annotation."""
    optional = False
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union and type(None) in args:
        optional = True
        rest = [a for a in args if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else Any
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return "flag", optional
    if hint in (int, float, str):
        return hint.__name__, optional
    if origin in (dict, Dict):
        return "mapping", optional
    if origin in (tuple, list):
        if origin is tuple and len(args) == 3 and all(a is float for a in args):
            return "floats3", optional
        if args and args[0] is int:
            return "ints", optional
        if args and args[0] is str:
            return "names", optional
    return "str", optional


def section_options(section_cls: type, section: str) -> Tuple[Option, ...]:
    """The :class:`Option` records of a section dataclass's fields, in declaration order."""
    hints = typing.get_type_hints(section_cls)
    out = []
    for f in dataclasses.fields(section_cls):
        meta = dict(f.metadata)
        kind, optional = _kind(hints[f.name])
        default = f.default if f.default is not _MISSING else f.default_factory()
        choices = meta.get("choices")
        metavar = meta.get("metavar")
        if metavar is None and choices is not None:
            metavar = "{" + ",".join(list(choices) + ([meta["other"]] if meta.get("other") else [])) + "}"
        out.append(Option(name=f.name, section=section, default=default, help=meta.get("help", ""),
                          choices=tuple(choices) if choices is not None else None, other=meta.get("other"),
                          flag=meta.get("flag") or "--" + f.name.replace("_", "-"), metavar=metavar,
                          kind=meta.get("kind", kind), none_means=meta.get("none_means"),
                          default_help=meta.get("default_help"), invalid=meta.get("invalid"),
                          optional=optional or default is None))
    return tuple(out)
