"""Campaign performance over time (营销效果): every campaign's result against its control with its cost and return, and
the same pooled by month, product, channel, district and by how the audience was chosen. Pure, no Django.

Each campaign contributes its groups' counts as its report has them (the base and the successes of target and
control: conversions, or for a retention campaign leavers). Pooling adds the counts of the campaigns in a group and
compares the totals, so a large campaign weighs as much as its people, and the interval is the pooled one.

Economics, in yuan: cost = contacts x cost per contact; the return counts only what the campaign added over its
control, incremental successes x value per conversion, where incremental successes are (target rate - control rate)
x the target base for a sale and (control churn - target churn) x the target base for retention (leavers kept).
Return on cost = (return - cost) / cost. Against a random group contacted like the targets the increment is what
the targeting added, not what contacting did (the report says which control each campaign had).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .evaluation import Group, compare


@dataclass(frozen=True)
class CampaignResult:
    campaign: int
    name: str
    month: str  # YYYY-MM of the start date
    purpose: str  # sale | retention
    product: str | None
    channel: str
    control_kind: str
    model_targeted: bool  # the audience ranks by a model's deciles (propensity, churn risk, circle scores)
    districts: tuple[str, ...]
    target: Group
    control: Group
    contacts: int
    cost_per_contact: float
    value_per_conversion: float | None  # None: nothing to value a success by (no fee, no revenue known)

    @property
    def retention(self) -> bool:
        return self.purpose == "retention"


def incremental(target: Group, control: Group, *, retention: bool) -> float | None:
    """Successes the campaign added over its control's rate: conversions, or leavers kept for retention."""
    if target.rate is None or control.rate is None:
        return None
    added = (control.rate - target.rate) if retention else (target.rate - control.rate)
    return added * target.contacted


def economics(result: CampaignResult) -> dict:
    cost = result.contacts * result.cost_per_contact
    added = incremental(result.target, result.control, retention=result.retention)
    gain = None if added is None or result.value_per_conversion is None else added * result.value_per_conversion
    return {"contacts": result.contacts, "cost_per_contact": result.cost_per_contact,
            "value_per_conversion": result.value_per_conversion, "cost": round(cost, 2),
            "incremental_successes": None if added is None else round(added, 1),
            "return": None if gain is None else round(gain, 2),
            "return_on_cost": None if gain is None or not cost else round((gain - cost) / cost, 3)}


def row(result: CampaignResult) -> dict:
    comparison = compare(result.target, result.control).as_dict()
    return {"campaign": result.campaign, "name": result.name, "month": result.month, "purpose": result.purpose,
            "product": result.product, "channel": result.channel, "control_kind": result.control_kind,
            "model_targeted": result.model_targeted, "districts": list(result.districts),
            "target": {"base": result.target.contacted, "successes": result.target.converted},
            "control": {"base": result.control.contacted, "successes": result.control.converted},
            **comparison, **economics(result)}


def pooled(results: Iterable[CampaignResult], key: Callable[[CampaignResult], str | None]) -> list[dict]:
    """Per value of `key` (None: left out), the campaigns' counts added up and compared, with their cost and return.
    Sale and retention campaigns are never pooled together: their successes are opposite things."""
    groups: dict[tuple[str, str], list[CampaignResult]] = {}
    for result in results:
        value = key(result)
        if value is not None:
            groups.setdefault((result.purpose, value), []).append(result)
    rows = []
    for (purpose, value), members in sorted(groups.items()):
        target = Group(sum(r.target.contacted for r in members), sum(r.target.converted for r in members))
        control = Group(sum(r.control.contacted for r in members), sum(r.control.converted for r in members))
        money = [economics(r) for r in members]
        cost = sum(m["cost"] for m in money)
        returns = [m["return"] for m in money if m["return"] is not None]
        gain = sum(returns) if returns else None
        rows.append({"key": value, "purpose": purpose, "campaigns": len(members),
                     "target": {"base": target.contacted, "successes": target.converted},
                     "control": {"base": control.contacted, "successes": control.converted},
                     **compare(target, control).as_dict(), "cost": round(cost, 2),
                     "return": None if gain is None else round(gain, 2),
                     "return_on_cost": None if gain is None or not cost else round((gain - cost) / cost, 3)})
    return rows


def trend(results: list[CampaignResult]) -> list[dict]:
    """Sale campaigns' success by month, model-targeted against not: the pooled target rate, the control's, and the
    lift, per month and kind (the published "success rate from 4.8% to 8.66%" is such a line over time)."""
    sales = [r for r in results if not r.retention]
    by_kind = {kind: {row["key"]: row for row in pooled([r for r in sales if r.model_targeted == flag], lambda r: r.month)}
               for kind, flag in (("model_targeted", True), ("untargeted", False))}
    months = sorted({r.month for r in sales})
    return [{"month": month, **{kind: rows.get(month) for kind, rows in by_kind.items()}} for month in months]
