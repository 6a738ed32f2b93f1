"""Product association (关联营销): how much holding product A raises the chance of holding product B. Pure.

For a pair (A, B) over N subscribers: support = share holding both; confidence(A -> B) = share of A's
holders who hold B; lift = confidence / B's overall share (1 = independent; above 1, A's holders are the
likelier buyers of B, the audience to seed a campaign for B with).
"""

from __future__ import annotations

import numpy as np


def association_rules(codes: list[str], subscribers: int, holders: np.ndarray, both: np.ndarray) -> list[dict]:
    """Every ordered pair of different products: holders, both, support, confidence, lift (None where a
    share is zero)."""
    rows = []
    for a, code_a in enumerate(codes):
        for b, code_b in enumerate(codes):
            if a == b:
                continue
            together = int(both[a, b])
            confidence = together / holders[a] if holders[a] else None
            share_b = holders[b] / subscribers if subscribers else 0
            rows.append({
                "from": code_a, "to": code_b, "from_holders": int(holders[a]), "to_holders": int(holders[b]),
                "both": together, "support": together / subscribers if subscribers else None,
                "confidence": confidence, "lift": confidence / share_b if confidence is not None and share_b else None,
            })
    return rows


def seed_audience(target: str, rules: list[dict], *, min_lift: float, min_support: float) -> str | None:
    """An audience for the target product: holders of the products most associated with it who lack it."""
    sources = sorted((r for r in rules if r["to"] == target and (r["lift"] or 0) >= min_lift
                      and (r["support"] or 0) >= min_support), key=lambda r: -r["lift"])
    if not sources:
        return None
    held = " or ".join(f'holds("{r["from"]}")' for r in sources)
    return f'({held}) and not holds("{target}")'
