"""Closed-loop evaluation of a campaign: the target group against the random control group. Pure.

Conversion rates, lift (target rate / control rate) with a 95% interval on the log scale, absolute
uplift (difference of rates) with a Wald 95% interval, and the two-sided two-proportion z-test p-value
(pooled standard error); gains by propensity decile for the gains/lift chart.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from scipy.stats import norm


@dataclass(frozen=True)
class Group:
    contacted: int
    converted: int

    def __post_init__(self):
        if self.contacted < 0 or self.converted < 0 or self.converted > self.contacted:
            raise ValueError(f"{self.converted} converted of {self.contacted} contacted is not a group")

    @property
    def rate(self) -> float | None:
        return self.converted / self.contacted if self.contacted else None


@dataclass(frozen=True)
class Comparison:
    target_rate: float | None
    control_rate: float | None
    lift: float | None
    lift_low: float | None
    lift_high: float | None
    uplift: float | None
    uplift_low: float | None
    uplift_high: float | None
    z: float | None
    p_value: float | None
    confidence: float

    def as_dict(self) -> dict:
        return asdict(self)


def compare(target: Group, control: Group, *, confidence: float = 0.95) -> Comparison:
    """The target group against the control group. Anything that cannot be computed (an empty group, no
    conversions in the control group for the lift) is None rather than a guess."""
    z_crit = float(norm.ppf(0.5 + confidence / 2))
    p1, p2 = target.rate, control.rate
    lift = lift_low = lift_high = uplift = uplift_low = uplift_high = z = p_value = None
    if p1 is not None and p2 is not None:
        uplift = p1 - p2
        spread = math.sqrt(p1 * (1 - p1) / target.contacted + p2 * (1 - p2) / control.contacted)
        uplift_low, uplift_high = uplift - z_crit * spread, uplift + z_crit * spread
        pooled = (target.converted + control.converted) / (target.contacted + control.contacted)
        pooled_spread = math.sqrt(pooled * (1 - pooled) * (1 / target.contacted + 1 / control.contacted))
        if pooled_spread > 0:
            z = uplift / pooled_spread
            p_value = float(2 * norm.sf(abs(z)))
        if p2 > 0:
            lift = p1 / p2
            if target.converted > 0:
                # The risk ratio's interval on the log scale (Katz).
                log_spread = math.sqrt(1 / target.converted - 1 / target.contacted + 1 / control.converted - 1 / control.contacted)
                lift_low, lift_high = (lift * math.exp(-z_crit * log_spread), lift * math.exp(z_crit * log_spread))
    return Comparison(p1, p2, lift, lift_low, lift_high, uplift, uplift_low, uplift_high, z, p_value, confidence)


def gains_table(counts: dict[int, tuple[int, int]]) -> list[dict]:
    """Per propensity decile (10 = the highest scores first) from {decile: (contacted, converted)}:
    contacted, converted, conversion rate, lift against the overall rate, and the cumulative share of
    all conversions (the gains curve)."""
    total_contacted = sum(c for c, _ in counts.values())
    total_converted = sum(k for _, k in counts.values())
    total_rate = total_converted / total_contacted if total_contacted else 0.0
    rows, cumulative = [], 0
    for decile in range(10, 0, -1):
        contacted, hits = counts.get(decile, (0, 0))
        cumulative += hits
        rate = hits / contacted if contacted else None
        rows.append({
            "decile": decile, "contacted": contacted, "converted": hits, "rate": rate,
            "lift": rate / total_rate if rate is not None and total_rate else None,
            "cumulative_gain": cumulative / total_converted if total_converted else None,
        })
    return rows


def decile_auc(counts: dict[int, tuple[int, int]]) -> float | None:
    """The area under the ROC curve of a decile score, from {decile: (members, successes)}: the chance a success
    outranks a failure, ties (the same decile) counting half. None without both."""
    positives = sum(k for _, k in counts.values())
    negatives = sum(n - k for n, k in counts.values())
    if not positives or not negatives:
        return None
    below, area = 0, 0.0
    for decile in sorted(counts):
        members, hits = counts[decile]
        area += hits * (below + (members - hits) / 2)
        below += members - hits
    return area / (positives * negatives)
