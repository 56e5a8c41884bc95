"""Dataset summaries: Cramér's V against the closed form for 2x2 tables, and the summary table."""

import math

import numpy as np
import pytest

from samlens.data import get_dataset
from samlens.data.inspect import cramers_v, summary_text


@pytest.mark.parametrize("table", [(30, 10, 5, 55), (10, 10, 10, 10), (40, 0, 0, 40), (3, 9, 12, 1)])
def test_cramers_v_matches_phi_for_two_by_two(table):
    a, b, c, d = table
    labels = np.repeat([0, 0, 1, 1], table)
    others = np.repeat([0, 1, 0, 1], table)
    phi = (a * d - b * c) / math.sqrt((a + b) * (c + d) * (a + c) * (b + d))
    assert cramers_v(labels, others, 2, 2) == pytest.approx(abs(phi))


def test_summary_lists_every_group_and_split():
    ds = get_dataset("mnist5k_dominoes", correlation=0.8)
    text = summary_text(ds)
    for name in ds.group_names:
        assert name in text
    assert "label==other" in text and "cramers_v" in text
    total = next(line for line in text.splitlines() if line.startswith("total")).split()[1:]
    assert total == [str(len(ds.labels(s))) for s in ds.splits]
