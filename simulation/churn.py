"""Planted churn (离网): who leaves the operator, when and how, from a hazard the churn model is measured against.

Each subscriber active at the window's start has a monthly hazard of deciding to leave: a log-linear function of
signals an operator can see (usage in decline, a close call circle mostly on other networks, an ageing handset, low
value, a short tenure, a plan commitment (合约) that binds or has just ended) and a frailty it cannot see. A leaver
either closes the line or ports the number out (携号转网) to another operator; most porters first text the operator
to ask whether they may port (查询携转资格), which arrives as a `port_out_query` event days before the `port_out`.
Subscribers who never leave ask too, now and then, most often while a commitment still binds them.

Deciding is the first time a subscriber's cumulative hazard passes an exponential draw of their own. A retention
offer made on a day multiplies the hazard from then on by (1 - RETENTION_REDUCTION): the same draw then stretches
the rest of the way, so that contacting some subscribers changes only their own futures.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

# Average monthly churn of active subscribers (closing and porting out together). Chinese operators stopped
# publishing a churn rate; their filings of the 2010s reported average monthly churn of roughly 2-3% for a base
# that was mostly prepaid (China Mobile's Form 20-F, "churn rate"), and net losses in the months after number
# portability reached the whole country (China Mobile lost 7.25 M net customers in December 2020, 0.8% of its
# base, net of gains). 2% a month sits at the low end of the published range: a mostly post-paid city.
MONTHLY_CHURN = 0.02
# Weights on the log monthly hazard (per unit of each signal). No operator publishes its churn drivers' weights: these
# are set so that the planted hazard ranks a month's leavers at an AUC of about 0.8, a little above what the best
# models reach on real operator data (the KDD Cup 2009 churn task, on Orange's customers: about 0.76).
WEIGHTS = {
    "declining": 1.8,  # the declining-usage profile: use already falling (visible as usage trends)
    "off_net_circle": 2.5,  # share of the close circle's calls on other networks
    "handset_years": 0.3,  # age of the handset in use (years, up to 5): a new phone is often bought with a new line
    "value": -0.6,  # the latent value trait (visible through ARPU and the plan's fee)
    "new": 0.8,  # joined less than a year ago
}
FRAILTY_SD = 0.45  # what no feature sees: a job elsewhere, a better offer at work, a partner's network
COMMITMENT_SHARE = 0.4  # subscribers on a plan with a commitment (合约套餐 / 合约机)
BOUND_FACTOR = 0.25  # while bound: porting is refused (携转资格) and closing costs a penalty
FREED_FACTOR = 2.5  # in the FREED_DAYS after the commitment ends: free, and courted by the competitors
FREED_DAYS = 90
PORT_SHARE = (0.6, 0.9)  # of leavers, those who port (without, with a line on another network already)
BOUND_PORT_FACTOR = 0.3  # a leaver still bound mostly closes (or pays the penalty first): fewer port
QUERY_SHARE = 0.75  # of porters, those who ask first; the port follows 2-14 days later
QUERY_LAG_DAYS = (2, 15)
# Between deciding and leaving, a leaver winds down: calls, texts and data move to the new line (most have one before
# the old one goes), falling by WIND_DOWN by the last day. Closers take 0-28 days, porters who do not ask 0-14. That
# usage falls in the weeks before churn, and that its change over sub-periods predicts churn better than its level,
# is what call-detail churn studies found (Wei & Chiu 2002, "Turning telecommunications call details to churn
# prediction: a data mining approach", Expert Systems with Applications 23(2)).
CLOSE_LAG_DAYS = (0, 29)
SILENT_PORT_LAG_DAYS = (0, 15)
WIND_DOWN = 0.7
CASUAL_QUERIES_MONTHLY = (0.004, 0.012)  # asking without leaving (unbound, bound)
# Receiving operators and their shares of ports where the leaver's circle does not decide it.
RECEIVING = np.array(["cu", "ct", "cbn"])
RECEIVING_SHARES = [0.46, 0.46, 0.08]
RETENTION_REDUCTION = 0.4  # a retention offer lowers a contacted subscriber's hazard by this share
LEAD_DAYS = 30  # the process starts this long before the window, so that leavers of the first days decided before it
NEVER = np.iinfo(np.int32).max


@dataclass
class Churn:
    log_hazard: np.ndarray  # float32: log monthly hazard before the commitment's factor (NaN: not active at the start)
    commitment_end: np.ndarray  # int32 day index of the commitment's end (NEVER: no commitment)
    decided_day: np.ndarray  # int32 day index of deciding to leave (NEVER: stays through the window)
    churn_day: np.ndarray  # int32 day index of closing or porting out (NEVER: stays)
    ports: np.ndarray  # bool: leaves by porting out (else closes)
    operator: np.ndarray  # uint8 index into RECEIVING (for porters)
    query_day: np.ndarray  # int32 day index of the port-out query before leaving (NEVER: none)
    casual_query_day: np.ndarray  # int32 day index of a query by someone who does not leave then (NEVER: none)
    reasons: dict  # name -> float32 per subscriber: each signal's term in the log hazard
    exposure: np.ndarray | None = None  # float64 cumulative hazard at which each subscriber decides (the draw)
    joined_day: np.ndarray | None = None  # int day index each subscriber joined
    draws: dict | None = None  # what settles leaving once decided: "port", "query", "lag" draws and "second_line"

    def factor(self, days: np.ndarray, rows: slice = slice(None)) -> np.ndarray:
        """(rows, days) the commitment's factor on the hazard on each day (1 without a commitment)."""
        end = self.commitment_end[rows, None].astype(np.int64)
        factor = np.where(days[None, :] < end, BOUND_FACTOR, np.where(days[None, :] < end + FREED_DAYS, FREED_FACTOR, 1.0))
        return np.where(end == NEVER, 1.0, factor).astype(np.float32)

    def monthly_hazard(self, days: np.ndarray, rows: slice = slice(None)) -> np.ndarray:
        return np.exp(self.log_hazard[rows, None]) * self.factor(days, rows)

    def probability_of_deciding(self, first_day: int, last_day: int) -> np.ndarray:
        """Per subscriber: the planted hazard's chance of deciding to leave on a day in [first_day, last_day] (the
        commitment's factor included, a retention offer not): what the churn model's AUC and lift are reported
        against. A model can beat it: a port-out query or a wind-down shows a decision already taken."""
        days = np.arange(first_day, last_day + 1)
        out = np.zeros(len(self.log_hazard))
        for rows in _parts(len(out)):
            hazard = np.nan_to_num(self.monthly_hazard(days, rows)) / 30
            out[rows] = 1 - np.exp(-hazard.sum(axis=1))
        return out

    def usage_factor(self, subscriber: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Per (subscriber, day): 1, or less while winding down between deciding and leaving."""
        decided, left = self.decided_day[subscriber].astype(np.int64), self.churn_day[subscriber].astype(np.int64)
        winding = (day >= decided) & (day < left)
        progress = (day - decided + 1) / np.maximum(left - decided + 1, 1)
        return np.where(winding, 1 - WIND_DOWN * progress, 1.0)


def _decision_days(churn: Churn, rows: np.ndarray, offer_day: np.ndarray, days: int) -> np.ndarray:
    """The day each of `rows` decides to leave (NEVER: not in the window), with a retention offer from `offer_day`."""
    timeline = np.arange(-LEAD_DAYS, days)
    daily = np.nan_to_num(churn.monthly_hazard(timeline, rows)) / 30
    daily *= np.where(timeline[None, :] >= offer_day[:, None], 1 - RETENTION_REDUCTION, 1.0)
    daily *= timeline[None, :] >= churn.joined_day[rows, None]
    cumulative = np.cumsum(daily, axis=1)
    exposure = churn.exposure[rows]
    reached = cumulative[:, -1] >= exposure
    first = np.argmax(cumulative >= exposure[:, None], axis=1)
    return np.where(reached, timeline[first], NEVER).astype(np.int32)


def _settle(churn: Churn) -> None:
    """From the decision to the leaving, by each subscriber's own draws: porting (likelier with a second line, less
    likely while bound), a port-out query first (most porters), and the lag before the line goes."""
    draws = churn.draws
    decided = churn.decided_day < NEVER
    bound_then = decided & (churn.decided_day < churn.commitment_end.astype(np.int64))
    port_share = np.where(draws["second_line"], PORT_SHARE[1], PORT_SHARE[0]) * np.where(bound_then, BOUND_PORT_FACTOR, 1.0)
    churn.ports = decided & (draws["port"] < port_share)
    asks = churn.ports & (draws["query"] < QUERY_SHARE)
    low, high = (np.select([asks, churn.ports], [QUERY_LAG_DAYS[i], SILENT_PORT_LAG_DAYS[i]], CLOSE_LAG_DAYS[i]) for i in (0, 1))
    lag = (low + draws["lag"] * (high - low)).astype(np.int32)
    churn.query_day = np.where(asks, churn.decided_day, NEVER).astype(np.int32)
    churn.churn_day = np.where(decided, churn.decided_day + lag, NEVER).astype(np.int32)


def with_offers(churn: Churn, offers: dict[int, int], days: int) -> Churn:
    """The same subscribers' futures had those in `offers` (subscriber -> day index) been made a retention offer that
    day: the same draws, a hazard lowered by RETENTION_REDUCTION from then on, so only the offered change (a decision
    taken before the offer stands). What a demo or test "contacts" after the city was written, as plant_churn's
    `contacts` would have from the start."""
    who = np.fromiter(offers, dtype=np.int64, count=len(offers))
    offer_day = np.fromiter(offers.values(), dtype=np.int64, count=len(offers))
    decided = churn.decided_day.copy()
    before = churn.decided_day[who] < offer_day  # decided already: the offer comes too late
    decided[who] = np.where(before, churn.decided_day[who], _decision_days(churn, who, offer_day, days))
    offered = replace(churn, decided_day=decided)
    _settle(offered)
    return offered


def from_truth(truth_dir, start_date) -> Churn:
    """The planted churn back from truth/churn.parquet, day indexes counted from `start_date` (the window's first day),
    in the city's subscriber order: what a test needs to score the planted hazard's own ceiling."""
    table = pq.read_table(Path(truth_dir) / "churn.parquet")
    start = np.datetime64(start_date, "D")

    def day(name: str) -> np.ndarray:
        dates = table[name].to_numpy(zero_copy_only=False).astype("datetime64[D]")
        return np.where(np.isnat(dates), NEVER, (dates - start).astype(np.int64)).astype(np.int32)

    kind = table["kind"].to_numpy(zero_copy_only=False)
    return Churn(log_hazard=table["log_monthly_hazard"].to_numpy(zero_copy_only=False).astype(np.float32),
                 commitment_end=day("commitment_end"), decided_day=day("decided_date"), churn_day=day("churn_date"),
                 ports=kind == "port_out", operator=np.zeros(len(kind), np.uint8), query_day=day("query_date"),
                 casual_query_day=day("casual_query_date"), reasons={},
                 exposure=table["exposure"].to_numpy(zero_copy_only=False).astype(np.float64),
                 joined_day=day("join_date").astype(np.int64),
                 draws={name: table[f"{name}_draw"].to_numpy(zero_copy_only=False) for name in ("port", "query", "lag")}
                 | {"second_line": table["second_line"].to_numpy(zero_copy_only=False)})


def _parts(n: int, size: int = 250_000):
    return (slice(lo, min(lo + size, n)) for lo in range(0, n, size))


def plant_churn(rng: np.random.Generator, *, days: int, active: np.ndarray, declining: np.ndarray,
                off_net_circle: np.ndarray, handset_days: np.ndarray, value: np.ndarray, tenure_days: np.ndarray,
                second_line: np.ndarray, circle_network: np.ndarray, joined_day: np.ndarray,
                contacts: dict[int, int] | None = None) -> Churn:
    """Draw who leaves during a window of `days` days (day 0 its first), among the `active` subscribers.

    `circle_network`: per subscriber, the index into RECEIVING of the network most of their off-net circle is on
    (-1: none). `joined_day`: the day index each subscriber joined (no one leaves before). `contacts`: subscriber -> day of a retention offer.
    """
    n = len(active)
    reasons = {
        "declining": WEIGHTS["declining"] * declining.astype(np.float32),
        "off_net_circle": WEIGHTS["off_net_circle"] * np.nan_to_num(off_net_circle).astype(np.float32),
        "handset_years": WEIGHTS["handset_years"] * np.clip(handset_days / 365, 0, 5).astype(np.float32),
        "value": WEIGHTS["value"] * value.astype(np.float32),
        "new": WEIGHTS["new"] * (tenure_days < 365).astype(np.float32),
    }
    frailty = rng.normal(0, FRAILTY_SD, n).astype(np.float32)
    committed = rng.random(n) < COMMITMENT_SHARE
    # Commitments of 12 or 24 months, ending anywhere from a year before the window to two years after it.
    commitment_end = np.where(committed, rng.integers(-365, 730, n), NEVER).astype(np.int32)
    exposure = rng.exponential(size=n)  # the cumulative hazard at which each subscriber decides
    port_draw, query_draw, lag_draw, operator_draw, casual_draw, casual_day_draw = (rng.random(n) for _ in range(6))
    linear = sum(reasons.values()) + frailty
    churn = Churn(log_hazard=np.where(active, linear, np.nan).astype(np.float32), commitment_end=commitment_end,
                  decided_day=np.full(n, NEVER, np.int32), churn_day=np.full(n, NEVER, np.int32), ports=np.zeros(n, bool),
                  operator=np.zeros(n, np.uint8), query_day=np.full(n, NEVER, np.int32),
                  casual_query_day=np.full(n, NEVER, np.int32), reasons=reasons, exposure=exposure, joined_day=joined_day)
    # Calibrate the base so that MONTHLY_CHURN of the active subscribers leave each month of the window, commitments
    # included: a share compounded over the window, not a mean hazard (the riskiest cannot leave twice).
    window = np.arange(days)
    total = np.concatenate([churn.monthly_hazard(window, rows).sum(axis=1) / 30 for rows in _parts(n)])[active]
    target = 1 - (1 - MONTHLY_CHURN) ** (days / 30)
    low, high = -10.0, 10.0
    for _ in range(50):  # bisect on the log of the factor
        middle = (low + high) / 2
        low, high = (middle, high) if np.mean(1 - np.exp(-total * np.exp(middle))) < target else (low, middle)
    churn.log_hazard += np.float32(low if active.any() else 0.0)

    offer_day = np.full(n, NEVER, np.int64)
    for who, day in (contacts or {}).items():
        offer_day[who] = day
    for rows in _parts(n):
        churn.decided_day[rows] = _decision_days(churn, np.arange(rows.start, rows.stop), offer_day[rows], days)

    churn.draws = {"port": port_draw, "query": query_draw, "lag": lag_draw, "second_line": second_line}
    _settle(churn)
    ends = commitment_end.astype(np.int64)
    shares = np.cumsum(RECEIVING_SHARES)
    by_share = np.searchsorted(shares, operator_draw * shares[-1], side="right").astype(np.uint8)
    churn.operator = np.where(circle_network >= 0, circle_network, by_share).astype(np.uint8)
    # Casual askers: one query at most in the window, by someone still there that day.
    bound_window = (ends > 0)
    rate = np.where(bound_window, CASUAL_QUERIES_MONTHLY[1], CASUAL_QUERIES_MONTHLY[0]) * days / 30
    casual_day = (casual_day_draw * days).astype(np.int32)
    casual = active & (casual_draw < rate) & (casual_day < churn.decided_day)
    churn.casual_query_day = np.where(casual, casual_day, NEVER).astype(np.int32)
    return churn
