"""Campaign evaluation against a published operator case and by hand-checkable arithmetic."""

import math

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from campaigns.evaluation import Group, compare, gains_table


def test_the_published_case():
    # 2,873 of 12,423 contacted in the targeted group against 159 of 1,940 in the random group. The case
    # quotes 23.12%, 8.18% and a lift of 2.83: those rates are 2,873 of 12,425 and 159 of 1,944; the counts
    # as quoted give 23.13%, 8.20% and 2.82, which is what an honest evaluation must say.
    quoted = compare(Group(12423, 2873), Group(1940, 159))
    assert round(quoted.target_rate * 100, 2) == 23.13 and round(quoted.control_rate * 100, 2) == 8.20
    assert round(quoted.lift, 2) == 2.82
    published = compare(Group(12425, 2873), Group(1944, 159))
    assert (round(published.target_rate * 100, 2), round(published.control_rate * 100, 2), round(published.lift, 2)) == (23.12, 8.18, 2.83)
    # The z-test p-value equals the chi-square test's without continuity correction.
    chi2, p, _, _ = chi2_contingency([[2873, 12423 - 2873], [159, 1940 - 159]], correction=False)
    assert quoted.p_value == pytest.approx(p, rel=1e-9) and quoted.z ** 2 == pytest.approx(chi2, rel=1e-9)
    assert quoted.p_value < 1e-40
    assert quoted.uplift_low < quoted.uplift < quoted.uplift_high and quoted.uplift_low > 0.13
    assert quoted.lift_low < quoted.lift < quoted.lift_high and quoted.lift_low > 2


def test_small_and_empty_groups_give_none_not_a_guess():
    nothing = compare(Group(100, 10), Group(0, 0))
    assert nothing.control_rate is None and nothing.lift is None and nothing.p_value is None
    no_control_conversions = compare(Group(100, 10), Group(50, 0))
    assert no_control_conversions.lift is None and no_control_conversions.uplift == pytest.approx(0.1)
    same = compare(Group(100, 0), Group(100, 0))
    assert same.uplift == 0 and same.p_value is None  # no variance at all: no test
    for contacted, converted in [(10, 11), (-1, 0), (5, -1)]:
        with pytest.raises(ValueError, match="is not a group"):
            Group(contacted, converted)


def test_the_uplift_interval_is_wald():
    result = compare(Group(400, 100), Group(400, 60))
    spread = math.sqrt(0.25 * 0.75 / 400 + 0.15 * 0.85 / 400)
    assert result.uplift_low == pytest.approx(0.10 - 1.959964 * spread, rel=1e-5)
    assert result.uplift_high == pytest.approx(0.10 + 1.959964 * spread, rel=1e-5)


def gains_by_decile(deciles: np.ndarray, converted: np.ndarray) -> list[dict]:
    """gains_table() of one row per subscriber: their propensity decile and whether they converted."""
    deciles, converted = np.asarray(deciles), np.asarray(converted, dtype=bool)
    return gains_table({d: (int((deciles == d).sum()), int(converted[deciles == d].sum())) for d in range(1, 11)})


def test_gains_by_decile_add_up():
    rng = np.random.default_rng(3)
    deciles = rng.integers(1, 11, 5000)
    converted = rng.random(5000) < deciles / 40  # higher deciles convert more
    rows = gains_by_decile(deciles, converted)
    assert [r["decile"] for r in rows] == list(range(10, 0, -1))
    assert sum(r["contacted"] for r in rows) == 5000 and sum(r["converted"] for r in rows) == converted.sum()
    gains = [r["cumulative_gain"] for r in rows]
    assert gains == sorted(gains) and gains[-1] == pytest.approx(1.0)
    assert rows[0]["lift"] > 1.5 > 0.5 > rows[-1]["lift"]
    assert gains_by_decile(np.array([]), np.array([]))[0]["rate"] is None
