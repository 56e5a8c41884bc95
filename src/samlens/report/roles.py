"""Which runs are references: the floor (untrained network) and the ceiling (hard feature only).

A run is the floor when its recorded config carries ``headroom: floor`` (written by
:mod:`samlens.reproduce.headroom`), the ceiling when it was trained with
``data.options.shuffle_easy: true``; every other run is a treatment. Plain data, no pandas:
the writers of reference runs and every report module read these names from here.
"""

from __future__ import annotations

from typing import Any

ROLE_KEY = "reference"
FLOOR = "untrained (floor)"
CEILING = "hard-only (ceiling)"
#: Key in the recorded config of a floor run.
FLOOR_MARK = "headroom"
#: Data option of the stand-ins that shuffles the easy block across training examples.
HARD_ONLY_KEY = "data.options.shuffle_easy"
#: The metric every headroom and paired comparison is about: probe accuracy of the hard feature.
HARD_FEATURE = "probe_acc_label"


def role(config: dict[str, Any]) -> str | None:
    """FLOOR, CEILING or None (a treatment) for a run's flattened config."""
    if config.get(FLOOR_MARK) == "floor":
        return FLOOR
    if config.get(HARD_ONLY_KEY) is True:
        return CEILING
    return None


def role_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config with the keys that mark a reference replaced by one ``reference`` key (first)."""
    rest = {k: v for k, v in config.items() if k not in (FLOOR_MARK, HARD_ONLY_KEY)}
    return {ROLE_KEY: role(config), **rest}
