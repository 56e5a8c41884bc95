"""The one validator of numeric options: each option is checked against its mathematical domain here.

Every layer (the optimizers, the config loader, the dataset and model factories) calls these
functions, so a value outside its domain is refused with the same one-line ``ConfigError`` wherever
it enters: the message names the option, the value and the domain.
"""

from __future__ import annotations

import collections.abc
import math
import types
import typing
from collections.abc import Sequence
from numbers import Real
from typing import Any

import numpy as np

from samlens.errors import ConfigError

__all__ = [
    "check_type",
    "check_real",
    "check_int",
    "check_rho",
    "check_lr",
    "check_momentum",
    "check_betas",
    "check_weight_decay",
    "check_eps",
    "check_fraction",
    "check_bool",
    "check_positive_int",
]


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"{left}{lo}, {hi}{right}"


def check_real(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float inside the interval; a ``ConfigError`` naming ``name`` otherwise.

    Booleans are refused: YAML's ``yes``/``true`` must not silently become 1.0.
    """
    domain = _interval(low, high, low_open, high_open)
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ConfigError(f"{name} must be a number in {domain}, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number in {domain}, got {value!r}") from None
    if not math.isfinite(x):
        raise ConfigError(f"{name} must be a finite number in {domain}, got {value!r}")
    too_low = low is not None and (x <= low if low_open else x < low)
    too_high = high is not None and (x >= high if high_open else x > high)
    if too_low or too_high:
        if high is None and low is not None:  # a one-sided domain reads best as the bound itself
            bound = f"{'>' if low_open else '>='} {low:g}"
            raise ConfigError(f"{name} must be {bound}, got {value!r} (must be in {domain})")
        raise ConfigError(f"{name} must be in {domain}, got {value!r}")
    return x


def check_int(name: str, value: object, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]``; floats with a fractional part and booleans are refused."""
    domain = _interval(low, high, False, False).replace("inf]", "inf)")
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer in {domain}, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer in {domain}, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{name} must be in {domain}, got {value!r}")
    return value


def check_positive_int(name: str, value: object) -> int:
    """Widths, sizes, intervals, counts: an integer ≥ 1."""
    return check_int(name, value, low=1)


def check_rho(value: object, name: str = "rho") -> float:
    """SAM's radius: finite and ≥ 0 (0 is the base optimizer)."""
    return check_real(name, value, low=0.0)


def check_lr(value: object, name: str = "lr") -> float:
    return check_real(name, value, low=0.0, low_open=True)


def check_momentum(value: object, name: str = "momentum") -> float:
    # momentum 1 never forgets a gradient: the heavy-ball recursion no longer converges.
    return check_real(name, value, low=0.0, high=1.0, high_open=True)


def check_betas(value: object, name: str = "betas") -> tuple[float, float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(f"{name} must be two numbers in [0, 1), got {value!r}")
    b1, b2 = (check_real(f"{name}[{i}]", v, low=0.0, high=1.0, high_open=True) for i, v in enumerate(value))
    return (b1, b2)


def check_weight_decay(value: object, name: str = "weight_decay") -> float:
    return check_real(name, value, low=0.0)


def check_eps(value: object, name: str = "eps") -> float:
    return check_real(name, value, low=0.0, low_open=True)


def check_fraction(name: str, value: object) -> float:
    return check_real(name, value, low=0.0, high=1.0)


def check_bool(name: str, value: object) -> bool:
    """A real boolean (numpy's too): YAML and ``-o`` give them, and a string such as "false" would
    otherwise be truthy."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """One of ``choices``; otherwise a ``ConfigError`` listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; valid choices: {', '.join(choices)}")
    return value


def type_name(tp: Any) -> str:
    """``int | None``, ``tuple[str, ...]``: an annotation as a user reads it."""
    text = tp.__name__ if isinstance(tp, type) else str(tp)
    return text.replace("typing.", "").replace("collections.abc.", "").replace("NoneType", "None")


def check_type(name: str, value: Any, tp: Any) -> Any:
    """``value`` (as parsed from YAML/JSON) checked against the annotation ``tp``; a ``ConfigError``
    naming ``name`` otherwise.

    Ints are accepted (and returned as floats) for floats, booleans never count as numbers, lists
    and tuples both fit a sequence annotation (returned as the annotated container), mappings are
    copied. Annotations the checker does not know are left to the code that uses the value.
    """
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return check_type(name, value, arg)
            except ConfigError:
                pass
        raise ConfigError(f"{name} must be {type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
    elif origin is dict or tp is dict:
        if isinstance(value, dict):
            return dict(value)
        raise ConfigError(f"{name} must be a mapping, got {value!r}")
    elif origin in (collections.abc.Sequence, list, tuple) or tp in (list, tuple):
        if isinstance(value, (list, tuple)):
            args = [a for a in typing.get_args(tp) if a is not Ellipsis]
            items = [check_type(f"{name}[{i}]", v, args[0]) for i, v in enumerate(value)] if args else value
            return tuple(items) if tuple in (origin, tp) else list(items)
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        return value
    raise ConfigError(f"{name} must be {type_name(tp)}, got {value!r}")
