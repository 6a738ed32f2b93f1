"""How the simulated city's subscribers answer a campaign's calls: the response model the simulator planted.

A contacted subscriber is reached with probability `reach`; reached, they take the product with
probability sigmoid(base_logit + propensity_weight * their planted propensity logit for it), and
otherwise say they are interested (accepted) or refuse. Vectorised; the same seed gives the same answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np

OUTCOMES = np.array(["no_answer", "refused", "accepted", "converted"])


def draw_outcomes(*, truth_dir: Path, msisdns: np.ndarray, product: str, seed: int, reach: float = 0.85) -> np.ndarray:
    """One outcome per MSISDN (in the order given), from the planted propensity and response model."""
    model = json.loads((truth_dir / "city.json").read_text())["response_model"]
    con = duckdb.connect()
    try:
        con.register("asked", {"msisdn": np.asarray(msisdns, dtype=str), "position": np.arange(len(msisdns))})
        logit = con.execute(
            f"SELECT p.logit FROM asked a LEFT JOIN read_parquet('{truth_dir / 'propensity.parquet'}') p "
            "ON p.msisdn = a.msisdn AND p.product_code = $product ORDER BY a.position", {"product": product}
        ).fetchnumpy()["logit"]
    finally:
        con.close()
    logit = np.ma.filled(np.ma.asarray(logit, dtype=float), np.nan)
    if np.isnan(logit).any():
        raise ValueError(f"{int(np.isnan(logit).sum())} MSISDNs have no planted propensity for {product!r} in {truth_dir}")
    rng = np.random.default_rng(seed)
    reached = rng.random(len(logit)) < reach
    converts = rng.random(len(logit)) < 1 / (1 + np.exp(-(model["base_logit"] + model["propensity_weight"] * logit)))
    interested = rng.random(len(logit)) < 0.3
    return OUTCOMES[np.where(~reached, 0, np.where(converts, 3, np.where(interested, 2, 1)))]
