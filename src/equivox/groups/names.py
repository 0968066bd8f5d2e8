"""The name language: ``"so3_irreps(irreps=4x0e+2x1o+1x2e, filter_lmax=3)"`` is the registered ``so3_irreps`` with
those options of its field kind.

:func:`parse_group_name` splits a name into its base and typed options (the base field kind's dataclass fields),
:func:`canonical_group_name` writes the one spelling of it, :func:`group_spec` gives the :class:`GroupSpec` of any
name (parameterised specs are derived once per canonical name) and :func:`group_name_error` the one-line message
for a config key or CLI flag. This is how YAML, the CLI and checkpoints reach every field option.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from . import registry
from .fields import FieldKind
from .registry import GroupSpec

__all__ = ["canonical_group_name", "group_name_error", "group_spec", "parse_group_name"]


def _unknown_group_message(name) -> str:
    import difflib

    close = difflib.get_close_matches(str(name), list(registry.GROUPS), n=3)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return f"unknown group {name!r}; {hint}available groups: {', '.join(registry.GROUPS)}"


def _split_group_name(name: str) -> Tuple[str, List[Tuple[str, str]]]:
    """``"base(k=v, ...)"`` -> ``("base", [("k", "v"), ...])`` (syntax only; commas inside ``[...]`` stay)."""
    if "(" not in name and ")" not in name:
        return name, []
    base, _, rest = name.partition("(")
    base, rest = base.strip(), rest.strip()
    if not base or not rest.endswith(")"):
        raise ValueError(f"group name {name!r} must read base(option=value, ...), e.g. "
                         "so3_irreps(irreps=4x0e+2x1o+1x2e, filter_lmax=3)")
    items, depth, cur = [], 0, ""
    for ch in rest[:-1]:
        depth += (ch in "[(") - (ch in "])")
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    pairs = []
    for item in items:
        if not item.strip() and len(items) == 1:
            continue  # "base()"
        key, eq, value = item.partition("=")
        if not eq or not key.strip().isidentifier() or not value.strip():
            raise ValueError(f"group name {name!r}: options are option=value separated by commas, got {item.strip()!r}")
        pairs.append((key.strip(), value.strip()))
    return base, pairs


def _field_options(fields: FieldKind) -> Dict[str, object]:
    """The options of a field kind: its dataclass fields (less :attr:`FieldKind.fixed_by_group`) and their types."""
    import dataclasses
    import sys
    import typing

    if not dataclasses.is_dataclass(fields):
        return {}
    hints = typing.get_type_hints(type(fields), vars(sys.modules[type(fields).__module__]))
    return {f.name: hints.get(f.name, object) for f in dataclasses.fields(fields)
            if f.init and f.name not in type(fields).fixed_by_group}


def _describe_type(tp) -> str:
    import typing

    args = typing.get_args(tp)
    if typing.get_origin(tp) is typing.Union and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_describe_type(a) for a in inner) + " or none"
    if typing.get_origin(tp) is tuple or tp is tuple:
        return "a list [a, b, ...]"
    return {int: "an integer", bool: "true or false", str: "a string", float: "a number"}.get(tp, str(tp))


def _parse_option(text: str, tp, where: str):
    """The value of an option written as ``text``, parsed by its dataclass type ``tp`` (``ValueError`` one line)."""
    import typing

    import yaml

    args = typing.get_args(tp)
    optional = typing.get_origin(tp) is typing.Union and type(None) in args
    inner = [a for a in args if a is not type(None)] if optional else [tp]
    bad = f"{where}: expected {_describe_type(tp)}, got {text!r}"
    if text.lower() in ("none", "null", "~"):
        if optional:
            return None
        raise ValueError(bad)
    if len(inner) != 1:
        raise ValueError(f"{where}: options of type {tp} cannot be given in a group name")
    (want,) = inner
    if want is str:
        value = text[1:-1] if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"" else text
        return "".join(value.split())  # a group name is a token: no spaces inside values ("4x0e + 1x1o")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ValueError(bad) from None
    if want is bool and isinstance(value, bool):
        return value
    if want is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if want is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if (typing.get_origin(want) is tuple or want is tuple) and isinstance(value, list):
        return tuple(value)
    raise ValueError(bad)


def _format_option(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(_format_option(v) for v in value) + "]"
    return str(value)


def parse_group_name(name) -> Tuple[str, Dict[str, object]]:
    """Split a group name into its registered base name and typed field options.

    ``"so3_irreps(irreps=4x0e+2x1o+1x2e, filter_lmax=3)"`` -> ``("so3_irreps", {"irreps": "4x0e+2x1o+1x2e",
    "filter_lmax": 3})``; a plain registered name -> ``(name, {})``. The options are the dataclass fields of the
    base group's field kind (``get_group(base).spec.fields``; ``FieldKind.fixed_by_group`` ones excluded), each
    value parsed by the field's type: integers, ``true``/``false``, strings (spaces removed), ``none`` for
    ``Optional`` fields, ``[a, b]`` for tuples. Options equal to the base group's own value are dropped, so every
    spelling of a group has one canonical name (:func:`canonical_group_name`).

    Raises:
        ValueError: one line: malformed name, unknown base group (close names listed), unknown option (the field
            kind's options listed), a value of the wrong type, or options on a field kind that has none.
    """
    if not isinstance(name, str):
        raise ValueError(_unknown_group_message(name))
    base, pairs = _split_group_name(name)
    spec = registry.GROUPS.get(base)
    if spec is None:
        raise ValueError(_unknown_group_message(base))
    if not pairs:
        return base, {}
    kinds = _field_options(spec.fields)
    if not kinds:
        raise ValueError(f"group {base!r} takes no options: its {spec.fields.name} fields have none (options exist "
                         f"for groups with irreps, fourier or quotient fields, e.g. so3_irreps(filter_lmax=3))")
    options: Dict[str, object] = {}
    for key, text in pairs:
        if key in type(spec.fields).fixed_by_group:
            raise ValueError(f"{key!r} of group {base!r} is fixed by the group, not an option (pick the group "
                             f"that has it, e.g. so3_irreps or o3_irreps)")
        if key not in kinds:
            listed = ", ".join(f"{k} ({_describe_type(t)})" for k, t in kinds.items())
            raise ValueError(f"unknown option {key!r} for group {base!r} ({spec.fields.name} fields); "
                             f"options: {listed}")
        if key in options:
            raise ValueError(f"group name {name!r} gives option {key!r} twice")
        value = _parse_option(text, kinds[key], f"option {key}={text} of group {base!r}")
        if value != getattr(spec.fields, key):
            options[key] = value
    return base, options


def canonical_group_name(name) -> str:
    """The one spelling of a group name: the base alone when no option differs from it, else
    ``base(k1=v1, k2=v2)`` with the options sorted by name and values written canonically."""
    base, options = parse_group_name(name)
    if not options:
        return base
    return f"{base}(" + ", ".join(f"{k}={_format_option(options[k])}" for k in sorted(options)) + ")"


def group_spec(name) -> GroupSpec:
    """The :class:`GroupSpec` of a group name, registered or parameterised (see :func:`parse_group_name`; nothing
    escnn is built). A parameterised name gets the base spec with ``fields = dataclasses.replace(base.fields,
    **options)`` under its canonical name, checked with ``FieldKind.validate`` and kept for the process.

    Raises:
        ValueError: as :func:`parse_group_name`, or an option value the field kind cannot use.
    """
    import dataclasses

    if isinstance(name, str) and name in registry.GROUPS:
        return registry.GROUPS[name]
    canonical = canonical_group_name(name)
    if canonical in registry.GROUPS:
        return registry.GROUPS[canonical]
    if canonical not in registry._DERIVED:
        base, options = parse_group_name(canonical)
        spec = registry.GROUPS[base]
        try:
            fields = dataclasses.replace(spec.fields, **options)
            fields.validate()
        except (TypeError, ValueError) as err:
            raise ValueError(f"group {canonical!r}: {err}") from None
        written = ", ".join(f"{k}={_format_option(v)}" for k, v in sorted(options.items()))
        registry._DERIVED[canonical] = dataclasses.replace(
            spec, name=canonical, fields=fields,
            description=f"{base} with its {spec.fields.name} fields' {written} (base: {spec.description})")
    return registry._DERIVED[canonical]


def group_name_error(value, what: str = "group", extra: Tuple[str, ...] = ()) -> Optional[str]:
    """``None`` when ``value`` is a usable group name (registered, parameterised, or one of ``extra`` such as
    ``"auto"``), else the one-line message for the user, starting with ``what`` (a config key or CLI flag)."""
    import difflib

    if value in extra:
        return None
    try:
        base = _split_group_name(value)[0] if isinstance(value, str) else None
    except ValueError as err:
        return f"{what} {value!r}: {err}"
    if base not in registry.GROUPS:
        valid = registry.available_groups() + list(extra)
        close = difflib.get_close_matches(str(base), valid, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{what} {value!r} is not a group name; {hint}valid: {', '.join(valid)} (with field options: " \
               "e.g. so3_irreps(filter_lmax=3))"
    try:
        group_spec(value)
    except ValueError as err:
        return f"{what} {value!r}: {err}"
    return None
