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
import pyarrow as pa

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


def retention_revisions(*, city: Path, msisdns: np.ndarray, offer_date, out: Path) -> dict:
    """How the city answers a retention campaign: the subscribers offered (by MSISDN) on `offer_date` get the planted
    reduction of their hazard from that day (simulation/churn.py with_offers: the same draws, so only they change),
    and the subscriber master rows whose status that changes are written to `out` as the CRM would send them (a
    master file updating the rows it names). Returns the counts: offered, leavers before and after the offer."""
    from . import churn as churning

    params = json.loads((city / "truth" / "city.json").read_text())
    start = np.datetime64(params["start_date"], "D")
    days = int(params["parameters"]["days"])
    planted = churning.from_truth(city / "truth", params["start_date"])
    truth_msisdn = duckdb.connect().sql(f"SELECT msisdn::VARCHAR AS m FROM read_parquet('{city / 'truth' / 'churn.parquet'}')"
                              ).fetchnumpy()["m"].astype(str)
    position = {m: i for i, m in enumerate(truth_msisdn)}
    day = int((np.datetime64(offer_date, "D") - start).astype(int))
    offers = {position[m]: day for m in np.asarray(msisdns, dtype=str)}
    offered = churning.with_offers(planted, offers, days)
    changed = np.flatnonzero((offered.churn_day != planted.churn_day)
                             & ((offered.churn_day < days) | (planted.churn_day < days)))
    left = offered.churn_day[changed] < days
    status_date = np.where(left, start + np.where(left, offered.churn_day[changed], 0), np.datetime64("NaT"))
    source = next(p for p in (city / "subscribers.parquet", city / "subscribers.csv") if p.exists())
    reader = f"read_parquet('{source}')" if source.suffix == ".parquet" else f"read_csv('{source}', all_varchar=true)"
    con = duckdb.connect()
    try:
        con.register("revised", pa.table({"msisdn": truth_msisdn[changed], "left": left,
                                           "new_date": pa.array(status_date.astype("datetime64[D]"), type=pa.date32())}))
        # Leavers whom the offer kept are active again (nothing else changes); one who still leaves, later, keeps how.
        con.execute(f"""COPY (SELECT s.* REPLACE (CASE WHEN r.left THEN s.status ELSE 'active' END AS status,
                                                   CASE WHEN r.left THEN r.new_date::VARCHAR END AS status_date)
                             FROM {reader} s JOIN revised r ON s.msisdn::VARCHAR = r.msisdn)
                        TO '{out}' (HEADER, DELIMITER ',')""")
    finally:
        con.close()
    who = np.fromiter(offers, dtype=np.int64, count=len(offers))

    def leavers(churn) -> int:
        return int(((churn.churn_day[who] >= day) & (churn.churn_day[who] < days)).sum())

    return {"offered": len(offers), "changed": len(changed), "leavers_without_offer": leavers(planted),
            "leavers_with_offer": leavers(offered)}
