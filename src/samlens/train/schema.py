"""Typed dataclass configs: fields that carry their domain, built from nested mappings, YAML files and
dotted overrides, every value checked with ``samlens.validate``.

A field is declared with :func:`option` (``lr: float = option(0.05, domain="lr")``); :func:`build`
turns a mapping into the dataclass, refusing unknown keys (naming the valid ones), values of the
wrong type and values outside their domain or set of choices, each as a one-line ``ConfigError``
that names the dotted key. ``samlens.train.config`` (the experiment config) and
``samlens.train.toy`` (the toy study) are both such configs.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from samlens.errors import ConfigError
from samlens.validate import (
    check_betas,
    check_eps,
    check_fraction,
    check_int,
    check_lr,
    check_momentum,
    check_positive_int,
    check_real,
    check_rho,
    check_type,
    check_weight_decay,
)

T = TypeVar("T")

Check = Callable[[str, Any], Any]

#: The mathematical domain of every numeric option, by kind; each is checked by samlens.validate.
DOMAINS: dict[str, Check] = {
    "rho": lambda key, v: check_rho(v, key),
    "lr": lambda key, v: check_lr(v, key),
    "momentum": lambda key, v: check_momentum(v, key),
    "betas": lambda key, v: check_betas(v, key),
    "weight_decay": lambda key, v: check_weight_decay(v, key),
    "eps": lambda key, v: check_eps(v, key),
    "positive": lambda key, v: check_real(key, v, low=0.0, low_open=True),
    "nonnegative": lambda key, v: check_real(key, v, low=0.0),
    "fraction": check_fraction,
    "size": check_positive_int,  # widths, sizes, lengths, batch sizes, intervals: >= 1
    "count": lambda key, v: check_int(key, v, low=0),  # worker counts; intervals where 0 means "off"
}

#: The domains as ``--help`` shows them.
DOMAIN_TEXT = {
    "rho": "in [0, inf)",
    "lr": "in (0, inf)",
    "momentum": "in [0, 1)",
    "betas": "pair in [0, 1)",
    "weight_decay": "in [0, inf)",
    "eps": "in (0, inf)",
    "positive": "in (0, inf)",
    "nonnegative": "in [0, inf)",
    "fraction": "in [0, 1]",
    "size": ">= 1",
    "count": ">= 0",
}


def option(
    default: Any = dataclasses.MISSING,
    *,
    factory: Any = dataclasses.MISSING,
    domain: str | Check | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A dataclass field with its domain (a key of :data:`DOMAINS`, or a ``check(key, value)``) or its
    set of choices."""
    metadata = {"domain": domain, "choices": choices}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _checked_value(f: dataclasses.Field, value: Any, tp: Any, key: str) -> Any:
    """One field: its type, then its domain or its set of choices."""
    try:
        value = check_type(key, value, tp)
        if isinstance(value, dict):
            _check_plain(key, value)
    except ConfigError as err:
        err.key = key  # the value is not of the option's type (not merely outside its domain)
        raise
    if value is None:
        return value
    domain = f.metadata.get("domain")
    if domain is not None:
        value = (DOMAINS[domain] if isinstance(domain, str) else domain)(key, value)
    choices = f.metadata.get("choices")
    if choices is not None:
        for item in value if isinstance(value, tuple) else (value,):
            if item not in choices:
                raise ConfigError(f"unknown {key} {item!r}; valid choices: {', '.join(choices)}")
    return value


def _check_plain(key: str, value: Any) -> None:
    """Free-form options hold plain data only (they are hashed as JSON and written as YAML)."""
    if isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                raise ConfigError(f"{key} keys must be strings, got {name!r}")
            _check_plain(f"{key}.{name}", item)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(f"{key}[{i}]", item)
    elif not (value is None or isinstance(value, (str, int, float, bool))):
        raise ConfigError(f"{key} must be plain data (text, numbers, lists, mappings), got {value!r}")


def check_fields(obj: Any, prefix: str = "") -> None:
    """Check every field of the dataclass ``obj`` (recursively) against its annotation, domain and
    choices, in place: ints given for floats become floats. A ``ConfigError`` names the dotted key."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        key, value, tp = f"{prefix}{f.name}", getattr(obj, f.name), hints[f.name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, tp):
                raise ConfigError(f"{key} must be a mapping, got {value!r}")
            check_fields(value, f"{key}.")
        else:
            object.__setattr__(obj, f.name, _checked_value(f, value, tp, key))


def _construct(cls: type[T], data: Any, prefix: str) -> T:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted((k for k in data if k not in names), key=str)
    if unknown:
        where = prefix.rstrip(".") or "config"
        raise ConfigError(f"unknown key {prefix}{unknown[0]} in {where}; valid keys: {', '.join(names)}")
    hints = typing.get_type_hints(cls)
    kwargs = {
        name: _construct(hints[name], value, f"{prefix}{name}.")
        if dataclasses.is_dataclass(hints[name])
        else value
        for name, value in data.items()
    }
    return cls(**kwargs)


def build(cls: type[T], data: Any, prefix: str = "") -> T:
    """The dataclass ``cls`` from a nested mapping (missing keys take defaults), every field checked.

    Unknown keys name the valid ones; ``prefix`` is the dotted position of ``data`` in a larger tree.
    """
    obj = _construct(cls, data, prefix)
    check_fields(obj, prefix)
    return obj


def _annotation(cls: type, key: str) -> Any:
    """The annotation of the dotted ``key`` in the dataclass ``cls`` (None: not a field of it)."""
    tp: Any = cls
    for part in key.split("."):
        if not dataclasses.is_dataclass(tp):
            return None
        tp = typing.get_type_hints(tp).get(part)
    return tp


def parse_text(cls: type, key: str, raw: str) -> Any:
    """A value given as text (``--section.key VALUE``, ``section.key=VALUE``) for the dotted ``key``
    of ``cls``: the text itself for a string option (``null`` for none where none is allowed), YAML
    otherwise (``0.1``, ``true``, ``null``, ``[16, 16]``, ``{"width": 8}``)."""
    tp = _annotation(cls, key)
    if tp is str or (typing.get_origin(tp) in (typing.Union, types.UnionType) and str in typing.get_args(tp)):
        return None if raw == "null" and type(None) in typing.get_args(tp) else raw
    if not raw.strip():
        return raw
    try:
        value = yaml.safe_load(raw)
    except (yaml.YAMLError, RecursionError):
        return raw  # not YAML: the type check names the option and the text
    if isinstance(value, str) and (tp is float or float in typing.get_args(tp)):
        try:  # YAML 1.1 reads 1e-3 (no dot) as text; as a float option's value it is a number
            return float(raw)
        except ValueError:
            pass
    return value


def _parse_override(cls: type, item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    key, raw = item.split("=", 1)
    return key.strip(), parse_text(cls, key.strip(), raw)


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {key}: {'.'.join(parts[: i + 1])} is not a section")
        node = child
    node[parts[-1]] = value


Overrides = list[str] | Mapping[str, Any] | None


def apply_overrides(tree: dict[str, Any], overrides: Overrides, cls: type) -> dict[str, Any]:
    """Return a copy of ``tree`` with dotted overrides applied (not yet validated)."""
    tree = copy.deepcopy(tree)
    if not overrides:
        return tree
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        items = [_parse_override(cls, item) for item in overrides]
    for key, value in items:
        if not isinstance(key, str) or not key:
            raise ConfigError(f"override key {key!r} must be a dotted name like section.key")
        _set_dotted(tree, key, value)
    return tree


def read_yaml_file(path: str | os.PathLike[str], what: str = "config file") -> Any:
    """The YAML document in the file at ``path`` (None when empty).

    Anything that keeps it from being read as YAML text (missing, unreadable, not UTF-8, binary,
    truncated, not YAML) is a one-line ``ConfigError`` naming ``what`` and the file.
    """
    path = Path(path)
    label = f"{what} {str(path)!r}"
    try:
        exists = path.is_file()
    except (OSError, ValueError):  # a NUL byte or a name too long for the file system
        exists = False
    if not exists:
        raise ConfigError(f"{label} does not exist")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{label} cannot be read: {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = f"byte {raw[err.start]:#04x} at offset {err.start}"
        raise ConfigError(f"{label} is not UTF-8 text ({bad})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or (str(err).splitlines() or ["unreadable"])[0]
        raise ConfigError(f"{label} is not valid YAML: invalid YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{label} is not valid YAML: nested too deeply") from None


def read_yaml(path: str | os.PathLike[str], what: str = "config file") -> dict[str, Any]:
    """Read a YAML mapping (an empty file is an empty mapping); anything else is a ``ConfigError``."""
    data = read_yaml_file(path, what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {str(Path(path))!r} must hold a mapping, got {type(data).__name__}")
    return data


def load_dataclass(
    cls: type[T],
    path: str | os.PathLike[str] | None,
    overrides: Overrides = None,
    what: str = "config file",
    section: str | None = None,
) -> T:
    """Defaults ← YAML file at ``path`` (its ``section`` mapping if given) ← dotted ``overrides``,
    validated into ``cls``. An error in the file's own content names the file."""
    tree: dict[str, Any] = {}
    if path is not None:
        tree = read_yaml(path, what)
        if section is not None:
            if not isinstance(tree.get(section), dict):
                raise ConfigError(f"{what} {str(Path(path))!r} must hold a {section!r} mapping")
            tree = tree[section]
    try:
        return build(cls, apply_overrides(tree, overrides, cls))
    except ConfigError:
        if path is None:
            raise
        try:
            build(cls, tree)
        except ConfigError as own:  # the file is wrong by itself: say which file
            raise ConfigError(f"{what} {str(Path(path))!r}: {own}") from None
        raise
