"""Customer value (客户价值): a score from 0 to 100 and the tiers operators name by it. Pure, no Django.

The score weighs where a subscriber stands among the active subscribers of the run (percentile ranks, so that
yuan, months and products add up) on what they are worth to the operator: spend (ARPU) above all, then tenure
(the revenue still to come), the spend's trend and the products held (each one a further tie). The tiers cut the
score's ranking by headcount, so that the table of tiers shows what operators mean by value segments: a minority
(高价值, the high tier) brings most of the revenue, the low tier (低价值) little of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (input, SQL over feature columns, weight): the weights sum to 1.
VALUE_INPUTS: list[tuple[str, str, float]] = [
    ("spend", "coalesce(arpu_30d, 0)", 0.55),
    ("tenure", "coalesce(tenure_months, 0)", 0.15),
    ("trend", "coalesce(charge_trend, 1)", 0.15),
    ("products", "coalesce(products_held, 0)", 0.15),
]
TIERS = ("high", "mid", "low")
TIER_NAMES = {"high": ("高价值客户", "High-value customer"), "mid": ("中价值客户", "Mid-value customer"),
              "low": ("低价值客户", "Low-value customer")}
PERCENTILES = np.linspace(0, 100, 101)


@dataclass(frozen=True)
class ValueScale:
    """What the partitions score by: each input's percentiles among the active subscribers, and the scores at
    which the tiers start (high first)."""

    percentiles: list[list[float]]  # per input, its values at the 0th..100th percentile
    tier_starts: list[float]  # the lowest score of the high tier, then of the mid tier

    def as_dict(self) -> dict:
        return {"percentiles": self.percentiles, "tier_starts": self.tier_starts}


def score(values: np.ndarray, percentiles: list[list[float]]) -> np.ndarray:
    """0-100 per row of `values` (one column per VALUE_INPUTS entry): the weighted mean of each input's percentile
    rank (the midpoint of tied percentiles, so that a value most subscribers share ranks in the middle of them)."""
    total = np.zeros(len(values))
    for column, cuts, (_, _, weight) in zip(values.T, percentiles, VALUE_INPUTS):
        cuts = np.asarray(cuts)
        rank = (np.searchsorted(cuts, column, side="left") + np.searchsorted(cuts, column, side="right")) / 2
        total += weight * np.clip(rank - 0.5, 0, 100)
    return np.round(total, 1)


def fit(values: np.ndarray, *, shares: tuple[float, float]) -> ValueScale:
    """The scale from a sample of active subscribers' inputs: `shares` are the high and mid tiers' shares of the
    headcount (the low tier is the rest)."""
    percentiles = [np.percentile(column, PERCENTILES).tolist() for column in values.T]
    scores = score(values, percentiles)
    high, mid = shares
    starts = [float(np.quantile(scores, 1 - high)), float(np.quantile(scores, 1 - high - mid))]
    return ValueScale(percentiles, starts)


def tier(scores: np.ndarray, tier_starts: list[float]) -> np.ndarray:
    """'high', 'mid' or 'low' per score."""
    return np.where(scores >= tier_starts[0], "high", np.where(scores >= tier_starts[1], "mid", "low"))
