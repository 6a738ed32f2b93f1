"""simulate_city: every raw dataset of DESIGN.md for a synthetic operator city, plus the ground truth.

Vectorised numpy throughout: each step draws arrays for all subscribers (or all subscriber-days) at
once. The same seed gives byte-identical files.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from . import churn as churning
from . import geography, handsets, online, social

CHINA_MOBILE_PREFIXES = np.array([134, 135, 136, 137, 138, 139, 147, 150, 151, 152, 157, 158, 159, 178, 182, 183, 184, 187, 188, 195, 198])
DEFAULT_END_DATE = date(2026, 10, 31)
LOCAL = timezone(timedelta(hours=8))  # Asia/Shanghai has no daylight saving

# code, name, English name, category, monthly fee, and the planted logistic propensity:
# intercept and weights on the latent traits (value, youth, data appetite, SMS appetite, travel, 5G handset)
PRODUCTS = [
    ("5g_plan", "5G套餐", "5G plan", "plan", 128, -1.8, (0.8, 0.2, 0.7, 0.0, 0.0, 1.8)),
    ("data_pack", "流量包", "Data pack", "data", 30, -1.4, (0.0, 0.4, 1.2, 0.0, 0.0, 0.0)),
    ("sms_pack", "短信包", "SMS pack", "sms", 10, -2.4, (0.0, -0.2, 0.0, 1.6, 0.0, 0.0)),
    ("broadband", "家庭宽带", "Home broadband", "broadband", 100, -0.9, (0.4, -0.5, 0.2, 0.0, 0.0, 0.0)),
    ("video_vip", "视频会员", "Video membership", "content", 25, -1.9, (0.2, 0.9, 0.8, 0.0, 0.0, 0.2)),
    ("color_ring", "彩铃", "Colour ring-back tone", "content", 5, -2.0, (0.1, -0.6, 0.0, 0.2, 0.0, 0.0)),
    ("family_plan", "家庭网", "Family network", "plan", 20, -1.1, (0.3, -0.3, 0.0, 0.0, 0.0, 0.0)),
    ("roaming_pack", "国际漫游包", "International roaming pack", "roaming", 60, -3.2, (0.6, 0.0, 0.0, 0.0, 2.0, 0.0)),
    ("cloud_drive", "和彩云", "Cloud drive", "content", 10, -2.3, (0.5, 0.2, 0.5, 0.0, 0.0, 0.0)),
    ("hd_voice", "高清通话", "HD voice (VoLTE)", "voice", 0, -0.6, (0.3, 0.0, 0.0, 0.0, 0.0, 0.8)),
]
# Directional data packs (定向流量包) sell to heavy users of an app's category: (category, weight on its latent interest).
PRODUCTS += [
    ("douyin_pack", "抖音定向流量包", "Douyin data pack", "data", 9, -2.6, (0.0, 0.2, 0.3, 0.0, 0.0, 0.0)),
    ("video_pack", "腾讯视频定向流量包", "Tencent Video data pack", "data", 15, -2.8, (0.1, 0.1, 0.3, 0.0, 0.0, 0.0)),
    ("game_pack", "游戏定向流量包", "Mobile games data pack", "data", 12, -3.0, (0.0, 0.2, 0.2, 0.0, 0.0, 0.0)),
]
PRODUCT_INTEREST = {"douyin_pack": ("short_video", 0.9), "video_pack": ("video", 0.9), "game_pack": ("game", 1.0),
                    "video_vip": ("video", 0.8)}
# The network effect: a product's logit rises by this much times the share of one's close circle (family and close
# friends on-net) holding it. The published MMS case found contacts' use the strongest predictor of take-up.
NETWORK_EFFECT = {"video_vip": 2.5, "family_plan": 3.0, "5g_plan": 1.2, "cloud_drive": 1.5}
# How a contacted subscriber responds to a campaign for a product: logit = BASE + WEIGHT * propensity logit.
RESPONSE_MODEL = {"base_logit": -1.2, "propensity_weight": 0.9, "uncontacted_base_logit": -2.6}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CityParameters:
    subscribers: int
    days: int
    seed: int = 42
    end_date: date = DEFAULT_END_DATE
    sites: int | None = None
    file_format: str = "csv"
    # Stays, events and IMEI observations (signalling) are most of the rows and of the memory; a usage-only
    # city (the tag benchmarks' 1 M x 30 days) leaves them out.
    signalling: bool = True

    @property
    def start_date(self) -> date:
        return self.end_date - timedelta(days=self.days - 1)

    @property
    def site_count(self) -> int:
        return self.sites or int(np.clip(self.subscribers // 25, 200, 6000))


def simulate_city(params: CityParameters, out_dir: Path, *, progress: Progress = lambda step: None) -> dict:
    """Write the raw datasets and truth/ into out_dir; return a summary (row counts per file)."""
    if params.subscribers < 10 or params.days < 1:
        raise ValueError("simulate at least 10 subscribers over at least 1 day")
    if params.file_format not in {"csv", "parquet"}:
        raise ValueError("file_format must be csv or parquet")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "truth").mkdir(exist_ok=True)
    rng = np.random.default_rng(params.seed)
    writer = _Writer(out_dir, params.file_format)
    started = time.monotonic()

    progress("geography and network")
    places = geography.build_places(rng)
    network = geography.build_network(rng, places, sites=params.site_count)
    day0 = datetime.combine(params.start_date, datetime.min.time(), LOCAL)
    epoch0 = int(day0.timestamp())
    writer.reference("regions", _regions_table())
    writer.reference("products", {k: np.array(v) for k, v in zip(
        ["code", "name", "name_en", "category", "monthly_fee_yuan"], zip(*[p[:5] for p in PRODUCTS]))})
    writer.raw("cells", geography.cells_table(rng, network, as_of_epoch=epoch0 + params.days * 86400))
    (out_dir / "districts.geojson").write_text(json.dumps(geography.districts_geojson(), ensure_ascii=False))
    catalogue, model_of_tac = handsets.tac_catalogue(rng)
    writer.raw("tac_catalogue", catalogue)

    progress("subscribers")
    people = _people(rng, params, places, network)

    progress("handsets")
    phones = _handsets(rng, params, people, catalogue["tac"], model_of_tac)

    progress("households, circles and interests")
    more = np.random.default_rng([params.seed, 8])
    # A line on another network too (dual-SIM): competitor callers, and some others. Their circles live mostly there.
    second_line = (people.profile == PROFILES.index("competitor_caller")) | (more.random(people.n) < 0.08)
    circles = social.build_social(np.random.default_rng([params.seed, 7]), n=people.n, groups=people.groups, home=people.home,
                                  second_line=second_line, age=people.age)
    interests = online.plant_interests(more, traits=people.traits, age=people.age, second_line=second_line)

    progress("churn")
    churn = _plant_churn(params, people, phones, circles, second_line)
    writer.raw("subscribers", _subscriber_table(np.random.default_rng([params.seed, 15]), params, people, churn))

    progress("products")
    writer.raw("subscriptions", _subscriptions(rng, params, people, phones, writer, circles, interests, churn))

    progress("usage_daily, stays, events and imei_observations")
    active = _active_days(rng, params, people)
    active &= np.arange(params.days)[None, :] < churn.churn_day[:, None]  # nothing after closing or porting out
    _usage_and_signalling(params, people, phones, network, places, active, writer, epoch0, churn)

    progress("app usage and call records")
    _behaviour(params, people, circles, interests, active, writer, epoch0, second_line)

    progress("ground truth")
    _write_truth(writer, params, people, phones, network)
    _write_churn_truth(writer, params, people, churn)
    summary = {
        "parameters": {**params.__dict__, "end_date": params.end_date.isoformat(), "sites": params.site_count},
        "start_date": params.start_date.isoformat(),
        "rows": writer.rows,
        "seconds": round(time.monotonic() - started, 1),
        "response_model": RESPONSE_MODEL,
        "churn": _churn_summary(params, people, churn),
    }
    (out_dir / "truth" / "city.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary


class _Writer:
    """Raw datasets in the chosen format, reference and truth tables always as CSV/Parquet."""

    def __init__(self, out_dir: Path, file_format: str):
        self.out_dir, self.file_format, self.rows = out_dir, file_format, {}

    def raw(self, name: str, columns: dict[str, np.ndarray | pa.Array]) -> None:
        table = pa.table({k: v if isinstance(v, pa.Array) else pa.array(v, from_pandas=True) for k, v in columns.items()})
        self.rows[name] = table.num_rows
        if self.file_format == "parquet":
            pq.write_table(table, self.out_dir / f"{name}.parquet")
        else:
            pacsv.write_csv(table, self.out_dir / f"{name}.csv", pacsv.WriteOptions(quoting_style="needed"))

    def stream(self, name: str) -> "_Stream":
        """A raw dataset written block by block (the rows of all subscribers would not fit in memory at once)."""
        return _Stream(self, name)

    def reference(self, name: str, columns: dict[str, np.ndarray]) -> None:
        table = pa.table({k: pa.array(v) for k, v in columns.items()})
        self.rows[name] = table.num_rows
        pacsv.write_csv(table, self.out_dir / f"{name}.csv")

    def truth(self, name: str, columns: dict[str, np.ndarray]) -> None:
        self.truth_in_parts(name, [columns])

    def truth_in_parts(self, name: str, parts: Iterable[dict[str, np.ndarray]]) -> None:
        """A truth table part by part: those too large to hold as text at once (a row per subscriber and product,
        per tie) are written a part at a time."""
        sink = None
        try:
            for columns in parts:
                table = pa.table({k: pa.array(v) for k, v in columns.items()})
                sink = sink or pq.ParquetWriter(self.out_dir / "truth" / f"{name}.parquet", table.schema)
                sink.write_table(table)
        finally:
            if sink is not None:
                sink.close()


class _Stream:
    def __init__(self, writer: _Writer, name: str):
        self.writer, self.name, self.sink = writer, name, None
        writer.rows[name] = 0

    def write(self, columns: dict) -> None:
        table = pa.table({k: pa.array(v, from_pandas=True) for k, v in columns.items()})
        if self.sink is None:
            path = self.writer.out_dir / f"{self.name}.{self.writer.file_format}"
            self.sink = pq.ParquetWriter(path, table.schema) if self.writer.file_format == "parquet" else \
                pacsv.CSVWriter(path, table.schema, write_options=pacsv.WriteOptions(quoting_style="needed"))
        self.sink.write_table(table)
        self.writer.rows[self.name] += table.num_rows

    def __enter__(self) -> "_Stream":
        return self

    def __exit__(self, *exc) -> None:
        if self.sink is not None:
            self.sink.close()


# Rows of a subscriber per part of a large truth table: a part's text columns stay a few hundred MB.
TRUTH_PART = 100_000


def _parts(n: int, size: int = TRUTH_PART) -> Iterable[slice]:
    return (slice(lo, min(lo + size, n)) for lo in range(0, max(n, 1), size))


def _regions_table() -> dict[str, np.ndarray]:
    rows = [geography.PROVINCE, geography.CITY] + [(d[0], d[1], d[2], "district", "4406") for d in geography.DISTRICTS]
    return {k: np.array(v) for k, v in zip(["code", "name", "name_en", "level", "parent_code"], zip(*rows))}


@dataclass
class _People:
    n: int
    msisdn: np.ndarray
    age: np.ndarray
    traits: np.ndarray  # (n, 6): value, youth, data, sms, travel, 5G handset (filled in by _handsets)
    profile: np.ndarray  # behaviour profile index, see PROFILES
    activity: np.ndarray  # 0 low, 1 mid, 2 high: how densely signalling sees them
    status: np.ndarray
    home: np.ndarray  # (n, 2) home at the start of the window
    new_home: np.ndarray  # (n, 2) home after a move (same as home for non-movers)
    move_day: np.ndarray  # day index of the move, or days (never) for non-movers
    work: np.ndarray  # (n, 2)
    works: np.ndarray  # bool: has a weekday workplace
    home_cell: np.ndarray
    new_home_cell: np.ndarray
    work_cell: np.ndarray
    off_from: np.ndarray  # a long power-off: days [off_from, off_to), empty for most
    off_to: np.ndarray
    subscriber_table: dict
    groups: social.HomeGroups


PROFILES = ["ordinary", "voice_centric", "data_centric", "sms_heavy", "night_active", "traveller", "competitor_caller", "declining", "growing", "silent"]
PROFILE_WEIGHTS = [0.40, 0.10, 0.12, 0.06, 0.06, 0.05, 0.06, 0.07, 0.05, 0.03]


def _people(rng: np.random.Generator, params: CityParameters, places, network) -> _People:
    n, days = params.subscribers, params.days
    prefix = rng.choice(CHINA_MOBILE_PREFIXES, size=n)
    number = prefix.astype(np.int64) * 10**8 + rng.integers(0, 10**8, n)
    number = np.unique(number)
    while len(number) < n:  # collisions are rare; top up until every subscriber has a unique number
        extra = rng.choice(CHINA_MOBILE_PREFIXES, size=n - len(number)).astype(np.int64) * 10**8 + rng.integers(0, 10**8, n - len(number))
        number = np.unique(np.concatenate([number, extra]))
    msisdn = rng.permutation(number[:n]).astype("U11")

    age = np.clip(rng.gamma(7.0, 5.5, n) + 12, 16, 90).astype(int)
    youth = (40 - age) / 13.0
    value = rng.normal(size=n) + 0.15 * np.clip(youth, -1, 1)
    profile = rng.choice(len(PROFILES), size=n, p=PROFILE_WEIGHTS)
    data = 0.6 * youth + rng.normal(size=n) * 0.8 + np.where(profile == PROFILES.index("data_centric"), 1.2, 0.0)
    sms = rng.normal(size=n) * 0.5 + np.where(profile == PROFILES.index("sms_heavy"), 2.5, 0.0)
    travel = rng.normal(size=n) * 0.5 + np.where(profile == PROFILES.index("traveller"), 2.5, 0.0)
    traits = np.column_stack([value, youth, data, sms, travel, np.zeros(n)])
    activity = rng.choice(3, size=n, p=[0.25, 0.50, 0.25])
    status = rng.choice(np.array(["active", "suspended", "closed"]), size=n, p=[0.965, 0.02, 0.015])

    home = geography.sample_positions(rng, places, n)
    works = (age >= 22) & (age <= 62) & (rng.random(n) < 0.78)
    work = geography.sample_positions(rng, places, n, centre_bias=2.5)
    # Movers change home once, well inside the window so both homes have enough nights to be seen.
    movers = (rng.random(n) < 0.03) & (days >= 10)
    move_day = np.full(n, days)
    if days >= 10:
        move_day[movers] = rng.integers(int(days * 0.3), int(days * 0.7) + 1, movers.sum())
    new_home = home.copy()
    new_home[movers] = geography.sample_positions(rng, places, int(movers.sum()))
    long_off = rng.random(n) < 0.005
    off_from = np.where(long_off, rng.integers(0, max(days - 3, 1), n), days)
    off_to = np.where(long_off, np.minimum(off_from + rng.integers(3, 11, n), days), days)

    # Households and flatmates share a home (and move together): a stream of its own, so the draws above stay.
    groups = social.home_groups(np.random.default_rng([params.seed, 6]), n)
    home, new_home, move_day = home[groups.head], new_home[groups.head], move_day[groups.head]
    final_home = np.where((move_day < days)[:, None], new_home, home)
    district = geography.district_of(final_home)
    region_code = np.array([d[0] for d in geography.DISTRICTS])[district]
    brand = np.select(
        [value > 1.1, youth > 0.8], ["全球通", "动感地带"], np.where(rng.random(n) < 0.25, "动感地带", "神州行")
    )
    plan_fee = np.round(np.exp(3.6 + 0.45 * value + rng.normal(size=n) * 0.15)).clip(8, 588).astype(int)
    plan_name = np.char.add(np.char.add(np.where(plan_fee >= 99, "5G畅享", np.where(brand == "动感地带", "动感地带芒果卡", "4G飞享")), " "), np.char.add(plan_fee.astype(str), "元"))
    tenure_days = np.minimum(rng.exponential(5 * 365, n), 22 * 365).astype(int) + 30
    join_date = np.array(params.end_date, dtype="datetime64[D]") - tenure_days
    gender = rng.choice(np.array(["M", "F", "U"]), size=n, p=[0.5, 0.48, 0.02])
    opt_out = rng.random(n) < 0.07
    table = {
        "msisdn": msisdn,
        "brand": brand,
        "plan": plan_name,
        "join_date": join_date,
        "birth_year": params.end_date.year - age,
        "gender": gender,
        "region_code": region_code,
        "status": status,
        "marketing_opt_out": opt_out,
    }
    return _People(
        n=n, msisdn=msisdn, age=age, traits=traits, profile=profile, activity=activity, status=status,
        home=home, new_home=new_home, move_day=move_day, work=work, works=works,
        home_cell=network.serving_cell(home), new_home_cell=network.serving_cell(new_home),
        work_cell=network.serving_cell(work), off_from=off_from, off_to=off_to, subscriber_table=table, groups=groups,
    )


def _plant_churn(params: CityParameters, people: _People, phones: _Phones, circles: social.Social,
                 second_line: np.ndarray) -> churning.Churn:
    """Who closes or ports out during the window (simulation/churn.py), from the signals planted so far."""
    _, off_net_share, leading = circles.close_circle_off_net(people.n)
    receiving = {list(social.NETWORKS).index(name): i for i, name in enumerate(churning.RECEIVING)}
    circle_network = np.array([receiving.get(k, -1) for k in range(len(social.NETWORKS))])[leading]
    window_start = np.array(params.start_date, dtype="datetime64[D]")
    return churning.plant_churn(
        np.random.default_rng([params.seed, 14]), days=params.days, active=people.status == "active",
        declining=people.profile == PROFILES.index("declining"), off_net_circle=off_net_share,
        handset_days=-phones.history["now_first_day"], value=people.traits[:, 0],
        tenure_days=(window_start - people.subscriber_table["join_date"]).astype(int), second_line=second_line,
        circle_network=circle_network, joined_day=(people.subscriber_table["join_date"] - window_start).astype(int))


def _subscriber_table(rng: np.random.Generator, params: CityParameters, people: _People, churn: churning.Churn) -> dict:
    """The subscriber master data as the operator's CRM has it at the window's end: the status with the date it took
    effect (closing and porting out during the window among them), and the end of a plan's commitment."""
    start = np.array(params.start_date, dtype="datetime64[D]")
    join = people.subscriber_table["join_date"]
    left = churn.churn_day < params.days
    status = np.where(left, np.where(churn.ports, "ported_out", "closed"), people.status)
    # Suspended or closed before the window: on a day between joining and the window's start.
    earlier = join + (rng.random(people.n) * np.maximum((start - join).astype(int), 1)).astype(int)
    status_date = np.where(left, start + np.minimum(churn.churn_day, params.days - 1),
                           np.where(people.status != "active", earlier, np.datetime64("NaT")))
    commitment = churn.commitment_end < churning.NEVER
    return {**people.subscriber_table, "status": status, "status_date": status_date,
            "commitment_end": np.where(commitment, start + np.where(commitment, churn.commitment_end, 0), np.datetime64("NaT"))}


def _churn_events(rng: np.random.Generator, churn: churning.Churn, lo: int, hi: int, epoch0: int, days: int):
    """(subscriber, epoch seconds, kind, receiving operator or "") of the block's port-out queries (an SMS to the
    operator, in the daytime) and ports (effective in office hours)."""
    parts = []
    for day, kind in ((churn.query_day, "port_out_query"), (churn.casual_query_day, "port_out_query"),
                      (np.where(churn.ports, churn.churn_day, churning.NEVER), "port_out")):
        who = lo + np.flatnonzero((day[lo:hi] >= 0) & (day[lo:hi] < days))
        hours = (9, 21) if kind == "port_out_query" else (10, 18)
        seconds = epoch0 + day[who].astype(np.int64) * 86400 + rng.integers(hours[0] * 3600, hours[1] * 3600, len(who))
        operator = churning.RECEIVING[churn.operator[who]] if kind == "port_out" else np.full(len(who), "")
        parts.append((who, seconds, np.full(len(who), kind), operator))
    return tuple(np.concatenate(column) for column in zip(*parts))


def _churn_summary(params: CityParameters, people: _People, churn: churning.Churn) -> dict:
    active = people.status == "active"
    left = (churn.churn_day >= 0) & (churn.churn_day < params.days)
    return {"monthly_rate_planted": churning.MONTHLY_CHURN,
            "left_in_window": int(left.sum()), "ported_out": int((left & churn.ports).sum()),
            "monthly_rate_drawn": round(float(left.sum() / max(active.sum(), 1) * 30 / params.days), 4),
            "retention_reduction": churning.RETENTION_REDUCTION}


def _write_churn_truth(writer: _Writer, params: CityParameters, people: _People, churn: churning.Churn) -> None:
    start = np.array(params.start_date, dtype="datetime64[D]")

    def date(day: np.ndarray) -> np.ndarray:
        return np.where(day < churning.NEVER, start + np.where(day < churning.NEVER, day, 0), np.datetime64("NaT"))

    left = churn.churn_day < churning.NEVER
    writer.truth_in_parts("churn", ({
        "msisdn": people.msisdn[rows],
        "log_monthly_hazard": churn.log_hazard[rows],  # exact, with the exposure: with_offers() redraws from them
        "exposure": churn.exposure[rows],
        **{f"{name}_draw": churn.draws[name][rows] for name in ("port", "query", "lag")},
        "second_line": churn.draws["second_line"][rows],
        "join_date": start + churn.joined_day[rows],
        "commitment_end": date(churn.commitment_end[rows]),
        "decided_date": date(churn.decided_day[rows]),
        "churn_date": date(churn.churn_day[rows]),
        "kind": np.where(left[rows], np.where(churn.ports[rows], "port_out", "close"), ""),
        "operator": np.where(left[rows] & churn.ports[rows], churning.RECEIVING[churn.operator[rows]], ""),
        "query_date": date(churn.query_day[rows]),
        "casual_query_date": date(churn.casual_query_day[rows]),
        **{f"reason_{name}": term[rows].round(4) for name, term in churn.reasons.items()},
    } for rows in _parts(people.n)))


@dataclass
class _Phones:
    tac_index_before: np.ndarray  # index into the catalogue's TACs (or -1: a TAC the catalogue lacks)
    imei_before: np.ndarray
    imei_after: np.ndarray
    model_before: np.ndarray
    model_after: np.ndarray
    change_day: np.ndarray  # day index of the handset change, or days (none)
    knockoff_reason: np.ndarray  # index into KNOCKOFF_REASONS
    reported_before: np.ndarray  # the brand and model the current handset reports about itself: a row of REPORTED
    reported_after: np.ndarray
    history: dict  # earlier handsets: subscriber, imei, model, first_day, last_day (day indexes, negative)


KNOCKOFF_REASONS = np.array(["", "unknown_tac", "bad_check_digit", "cloned_tac"])
GENUINE, UNKNOWN_TAC, BAD_CHECK_DIGIT, CLONED_TAC = range(len(KNOCKOFF_REASONS))
# (brand, model) a handset reports about itself: the catalogue's models, then clones' and unknown makers' names.
REPORTED = np.array([[m[0], m[1]] for m in handsets.MODELS] + handsets.CLONED_REPORTS + handsets.UNKNOWN_MAKERS)


def _handsets(rng, params: CityParameters, people: _People, tacs: np.ndarray, model_of_tac: np.ndarray) -> _Phones:
    n, days = people.n, params.days
    value, youth = people.traits[:, 0], people.traits[:, 1]
    preferred = np.clip(np.round(1.2 + 0.9 * value + 0.3 * youth), 0, 3).astype(int)
    enthusiast = rng.random(n) < 0.06
    preferred[enthusiast] = 3

    def handset(models: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # One of the model's TACs: a model's TACs are contiguous in the catalogue.
        first = np.searchsorted(model_of_tac, models)
        count = np.bincount(model_of_tac, minlength=len(handsets.MODELS))[models]
        return first + (rng.random(len(models)) * count).astype(int), models

    tac_before, model_before = handset(handsets.choose_models(rng, preferred))
    changes = rng.random(n) < np.where(enthusiast, 0.30, 0.04) * min(days / 30, 3)
    changes &= days >= 2
    change_day = np.where(changes, rng.integers(1, max(days, 2), n), days)
    upgrade = np.clip(preferred + rng.choice([0, 0, 1], size=n), 0, 3)
    tac_after, model_after = handset(handsets.choose_models(rng, upgrade))
    tac_after = np.where(changes, tac_after, tac_before)
    model_after = np.where(changes, model_after, model_before)

    # Knock-offs (山寨机): a TAC no catalogue lists, or an IMEI whose check digit is wrong.
    knockoff = rng.random(n) < 0.02
    reason = np.where(knockoff, np.where(rng.random(n) < 0.5, UNKNOWN_TAC, BAD_CHECK_DIGIT), GENUINE).astype(np.uint8)
    tac_digits = tacs.astype(np.int64)
    unknown_tac = rng.integers(99_000_000, 99_999_999, n)
    before_digits = np.where(reason == UNKNOWN_TAC, unknown_tac, tac_digits[tac_before])
    imei_before = handsets.make_imeis(rng, before_digits, bad_check_digit=reason == BAD_CHECK_DIGIT)
    imei_after = np.where(changes, handsets.make_imeis(rng, tac_digits[tac_after]), imei_before)
    people.traits[:, 5] = handsets.FIVE_G[model_after] & (reason == GENUINE)

    # A stream of its own from here, so that adding handset history left every other dataset as it was.
    more = np.random.default_rng([params.seed, 4])
    reported_before, reported_after = model_before.astype(np.int16), model_after.astype(np.int16)
    # Cloned TACs: a few popular models' TACs reused by knock-offs reporting models of their own.
    cloned = (reason == GENUINE) & (more.random(n) < 0.008)
    popular = np.argsort([-m[7] for m in handsets.MODELS], kind="stable")[:3]
    victims = np.searchsorted(model_of_tac, popular)  # the first TAC of each of three popular models
    victim = victims[more.integers(0, len(victims), n)]
    fakes = len(handsets.MODELS) + more.integers(0, len(handsets.CLONED_REPORTS), n)
    imei_before = np.where(cloned, handsets.make_imeis(more, tac_digits[victim]), imei_before)
    imei_after = np.where(cloned & ~changes, imei_before, imei_after)
    reported_before[cloned] = fakes[cloned]
    reason = np.where(cloned, CLONED_TAC, reason).astype(np.uint8)
    unknown = reason == UNKNOWN_TAC
    reported_before[unknown] = len(handsets.MODELS) + len(handsets.CLONED_REPORTS) + more.integers(0, len(handsets.UNKNOWN_MAKERS), unknown.sum())
    history = _handset_history(more, params, people, preferred, enthusiast, model_before, tac_digits, model_of_tac)
    return _Phones(
        tac_index_before=np.where(reason == UNKNOWN_TAC, -1, np.where(cloned, victim, tac_before)), imei_before=imei_before,
        imei_after=imei_after, model_before=model_before, model_after=model_after, change_day=change_day,
        knockoff_reason=reason, reported_before=reported_before, reported_after=reported_after, history=history,
    )


def _handset_history(rng, params, people: _People, preferred, enthusiast, model_now, tac_digits, model_of_tac) -> dict:
    """The handsets each subscriber used before the window: up to three, each kept for a personal change
    cycle (enthusiasts every 6-10 months, most people every 2-3 years), many staying with one brand."""
    n = people.n
    cycle = np.exp(rng.normal(np.where(enthusiast, np.log(240), np.log(800)), 0.3, n)).clip(90, 2000)
    loyal = rng.random(n) < 0.45
    joined = (people.subscriber_table["join_date"] - np.array(params.start_date, dtype="datetime64[D]")).astype(int)
    earliest = np.maximum(joined, -handsets.HISTORY_DAYS)  # no observations before joining or before retention
    # The handset in use at the window's start came into use this many days before it (at least one).
    first = -np.maximum((rng.random(n) * cycle).astype(int), 1)
    now_first = np.maximum(first, earliest)
    columns = {"subscriber": [np.arange(n)], "model": [model_now], "first_day": [now_first], "last_day": [np.full(n, -1)]}
    later_model, later_first = model_now, first
    brands = np.array([m[0] for m in handsets.MODELS])
    for _ in range(3):
        last = later_first - 1
        start = last - (cycle * rng.uniform(0.7, 1.3, n)).astype(int)
        keep = last >= earliest  # some of its use falls inside what the lake can hold
        tier = np.clip(preferred - rng.choice([0, 0, 1], n), 0, 3)
        model = np.where(loyal, handsets.models_of_brand_near_tier(rng, brands[later_model], tier), handsets.choose_models(rng, tier))
        columns["subscriber"].append(np.flatnonzero(keep)); columns["model"].append(model[keep])
        columns["first_day"].append(np.maximum(start, earliest)[keep]); columns["last_day"].append(last[keep])
        later_model, later_first = np.where(keep, model, later_model), np.where(keep, start, later_first)
        earliest = np.where(keep, earliest, 0)  # once one is out of reach, so are the ones before it
    history = {k: np.concatenate(v) for k, v in columns.items()}
    past = history["last_day"] < -1  # the first entry of each subscriber is the current handset itself
    # By subscriber, so that a block of subscribers finds its handsets by a binary search.
    order = np.flatnonzero(past)[np.argsort(history["subscriber"][past], kind="stable")]
    history = {k: v[order] for k, v in history.items()}
    first_tac = np.searchsorted(model_of_tac, history["model"])
    count = np.bincount(model_of_tac, minlength=len(handsets.MODELS))[history["model"]]
    tac = first_tac + (rng.random(len(first_tac)) * count).astype(int)
    history["imei"] = handsets.make_imeis(rng, tac_digits[tac])
    history["now_first_day"] = now_first  # per subscriber: when the handset in use at the window's start came
    return history


def _propensity_logits(people: _People) -> np.ndarray:
    """(n, products) planted logits; the truth every propensity model is measured against."""
    intercepts = np.array([p[5] for p in PRODUCTS])
    weights = np.array([p[6] for p in PRODUCTS])  # (products, 6)
    return intercepts[None, :] + people.traits @ weights.T


def _subscriptions(rng, params: CityParameters, people: _People, phones: _Phones, writer: _Writer,
                   circles: social.Social, interests: online.Interests, churn: churning.Churn) -> dict:
    logits = _propensity_logits(people)
    codes = [p[0] for p in PRODUCTS]
    for code, (category, weight) in PRODUCT_INTEREST.items():
        logits[:, codes.index(code)] += weight * np.clip(interests.latent[:, online.INTEREST_CATEGORIES.index(category)], -3, 3)
    # Drawn part by part (the same numbers as at once): a city of 10 M has 130 M of them.
    held = _draw(rng, logits)
    # The network effect: the share of one's close circle holding a product at the window's start lifts the odds of
    # taking it up (the truth's logit, which campaigns' responses follow, includes it).
    effect = np.array([NETWORK_EFFECT.get(code, 0.0) for code in codes])
    circle_share = circles.close_circle_share(people.n, held[:, effect > 0])
    logits[:, effect > 0] += effect[effect > 0] * circle_share
    # Adoption during the window follows the same propensity, shifted down: the labels of issue 6.
    adopt = ~held & _draw(rng, logits - 3.2, scale=min(params.days / 30, 2))
    subscriber, product = np.nonzero(held | adopt)
    window_start = np.array(params.start_date, dtype="datetime64[D]")
    join = people.subscriber_table["join_date"][subscriber]
    span = np.maximum((window_start - join).astype(int), 1)
    start = np.where(
        adopt[subscriber, product],
        window_start + rng.integers(0, params.days, len(subscriber)),
        join + (rng.random(len(subscriber)) * span).astype(int),
    )
    ends = held[subscriber, product] & (rng.random(len(subscriber)) < 0.03)
    # Never before the start: a subscriber who joined during the window started their products then too.
    end = np.where(ends, np.maximum(window_start + rng.integers(0, params.days, len(subscriber)), start), np.datetime64("NaT"))
    # A leaver's products end when the line closes or ports out; none starts after.
    left = window_start + np.minimum(churn.churn_day[subscriber], params.days)
    gone = churn.churn_day[subscriber] < params.days
    end = np.where(gone, np.where(np.isnat(end), left, np.minimum(end, left)), end)
    stays = ~gone | (start < left)
    subscriber, product, start, end = subscriber[stays], product[stays], start[stays], end[stays]
    codes = np.array([p[0] for p in PRODUCTS])
    writer.truth_in_parts("propensity", ({
        "msisdn": np.repeat(people.msisdn[rows], len(PRODUCTS)),
        "product_code": np.tile(codes, len(people.msisdn[rows])),
        "logit": logits[rows].ravel().round(4),
        "probability": (1 / (1 + np.exp(-logits[rows].ravel()))).round(4),
        "held_at_start": held[rows].ravel(),
        "adopted_in_window": adopt[rows].ravel(),
    } for rows in _parts(people.n)))
    return {
        "msisdn": people.msisdn[subscriber],
        "product_code": codes[product],
        "start_date": start,
        "end_date": end,
    }


def _draw(rng: np.random.Generator, logits: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """True with probability scale * sigmoid(logit), row part by row part."""
    drawn = np.empty(logits.shape, bool)
    for rows in _parts(len(logits)):
        drawn[rows] = rng.random(logits[rows].shape) < 1 / (1 + np.exp(-logits[rows])) * scale
    return drawn


def _active_days(rng, params: CityParameters, people: _People) -> np.ndarray:
    """(n, days) bool: the subscriber used the network that day (and their phone was on)."""
    silent = people.profile == PROFILES.index("silent")
    p_active = np.where(silent, 0.15, 0.97)
    active = rng.random((people.n, params.days)) < p_active[:, None]
    active &= (people.status == "active")[:, None]
    day = np.arange(params.days)[None, :]
    active &= ~((day >= people.off_from[:, None]) & (day < people.off_to[:, None]))
    return active


def _weekend(params: CityParameters) -> np.ndarray:
    """Per day of the window: is it a Saturday or Sunday? (1970-01-01 was a Thursday.)"""
    days = (np.array(params.start_date, dtype="datetime64[D]") + np.arange(params.days)).view("int64")
    return np.isin((days + 3) % 7, [5, 6])


# Rows are drawn per block of this many subscribers, each block from a stream of its own (seed, dataset, block):
# memory stays flat in city size, and the same seed gives the same files.
BLOCK = 4096


def _usage_and_signalling(params: CityParameters, people: _People, phones: _Phones, network, places, active: np.ndarray,
                          writer: _Writer, epoch0: int, churn: churning.Churn) -> None:
    """usage_daily and stays, events and imei_observations, block by block. A usage-only city's events are only those
    of leaving (port-out queries and ports): they come from the operator's business systems, not signalling."""
    fee = np.char.rstrip(np.char.partition(people.subscriber_table["plan"], " ")[:, 2], "元").astype(float)
    with contextlib.ExitStack() as files:
        usage = files.enter_context(writer.stream("usage_daily"))
        events = files.enter_context(writer.stream("events"))
        if params.signalling:
            stays, observations = (files.enter_context(writer.stream(name)) for name in ("stays", "imei_observations"))
        for block, lo in enumerate(range(0, people.n, BLOCK)):
            hi = min(lo + BLOCK, people.n)
            usage.write(_usage_daily(np.random.default_rng([params.seed, 11, block]), params, people, active, fee, lo, hi, churn))
            leaving = _churn_events(np.random.default_rng([params.seed, 16, block]), churn, lo, hi, epoch0, params.days)
            if params.signalling:
                stays.write(_stays(np.random.default_rng([params.seed, 12, block]), params, people, network, places, active, epoch0, lo, hi))
                day_events, day_observations = _events_and_observations(
                    np.random.default_rng([params.seed, 13, block]), params, people, phones, network, active, epoch0, lo, hi, leaving)
                events.write(day_events)
                observations.write(day_observations)
            else:
                events.write(_event_table(people, *leaving, cells=np.full(len(leaving[0]), ""), imeis=np.zeros(len(leaving[0]), np.int64)))


def _block(days_of_block: np.ndarray, lo: int) -> tuple[np.ndarray, np.ndarray]:
    """The (subscriber, day) pairs set in a block's (subscribers, days) mask, subscribers numbered city-wide."""
    sub, day = np.nonzero(days_of_block)
    return sub + lo, day


def _usage_daily(rng, params: CityParameters, people: _People, active: np.ndarray, fee: np.ndarray, lo: int, hi: int,
                 churn: churning.Churn) -> dict:
    sub, day = _block(active[lo:hi], lo)
    m = len(sub)
    profile, value = people.profile[sub], people.traits[sub, 0]
    is_ = lambda name: profile == PROFILES.index(name)  # noqa: E731
    weekend = _weekend(params)[day]
    progress_in_window = day / max(params.days - 1, 1)
    trend = np.where(is_("declining"), 1.0 - 0.75 * progress_in_window, np.where(is_("growing"), 0.7 + 0.6 * progress_in_window, 1.0))
    scale = np.where(is_("silent"), 0.05, 1.0) * trend * churn.usage_factor(sub, day)
    voice_rate = np.exp(1.2 + 0.35 * value + np.where(is_("voice_centric"), 0.9, 0.0)) * np.where(weekend, 0.8, 1.0) * scale
    voice_calls = rng.poisson(voice_rate)
    voice_minutes = np.round(voice_calls * rng.gamma(2.0, 1.3, m), 1)
    onnet_share = np.clip(0.62 + 0.1 * rng.normal(size=m), 0.05, 0.95)
    onnet_calls = rng.binomial(voice_calls, onnet_share)
    offnet_calls = voice_calls - onnet_calls
    competitor_share = np.where(is_("competitor_caller"), 0.85, 0.45)
    competitor_calls = rng.binomial(offnet_calls, competitor_share)
    sms = rng.poisson(np.exp(people.traits[sub, 3] * 1.1 - 0.6) * scale)
    mms = rng.poisson(0.02 * scale)
    data_mb = np.round(rng.lognormal(5.0 + 0.9 * people.traits[sub, 2], 0.6) * np.where(weekend, 1.2, 1.0) * scale, 1)
    roaming_day = rng.random(m) < np.where(is_("traveller"), 0.35, 0.004)
    roaming_minutes = np.where(roaming_day, np.round(rng.gamma(2.0, 12.0, m), 1), 0.0)
    night_share = np.where(is_("night_active"), 0.45, 0.08)
    night_calls = rng.binomial(voice_calls, night_share)
    charge = np.round(fee[sub] / 30 + 0.1 * np.maximum(voice_minutes - 10, 0) + 0.99 * roaming_minutes + 0.0005 * data_mb, 2)
    return {
        "msisdn": people.msisdn[sub],
        "date": np.array(params.start_date, dtype="datetime64[D]") + day,
        "voice_calls": voice_calls,
        "voice_minutes": voice_minutes,
        "onnet_calls": onnet_calls,
        "offnet_calls": offnet_calls,
        "competitor_calls": competitor_calls,
        "sms": sms,
        "mms": mms,
        "data_mb": data_mb,
        "roaming_minutes": roaming_minutes,
        "night_calls": night_calls,
        "charge_yuan": charge,
    }


def _stays(rng, params: CityParameters, people: _People, network, places, active, epoch0: int, lo: int, hi: int) -> dict:
    """Signalling stays: nights at home, weekday office hours at work, leisure elsewhere, with the
    noise real signalling has (a neighbouring cell instead of the serving one, missing observations)."""
    observed = np.array([0.55, 0.85, 0.97])[people.activity[lo:hi]]  # by subscriber less lo, like the neighbours below
    everywhere = np.ones(hi - lo, bool)
    # Each subscriber's neighbouring cells, indexed by the city-wide subscriber number less lo.
    home_nb = network.serving_cell(people.home[lo:hi], neighbour=everywhere)
    new_home_nb = network.serving_cell(people.new_home[lo:hi], neighbour=everywhere)
    work_nb = network.serving_cell(people.work[lo:hi], neighbour=everywhere)
    weekday = ~_weekend(params)
    parts = []

    def emit(sub, day, start_s, end_s, cell, neighbour_cell):
        noisy = rng.random(len(sub)) < 0.12
        parts.append((sub, epoch0 + day * 86400 + start_s, epoch0 + day * 86400 + end_s, np.where(noisy, neighbour_cell, cell)))

    # Nights: evening of day d to the morning of d+1, reported as two stays (a handover at some point).
    sub, day = _block(active[lo:hi], lo)
    moved = day >= people.move_day[sub]
    cell = np.where(moved, people.new_home_cell[sub], people.home_cell[sub])
    neighbour = np.where(moved, new_home_nb[sub - lo], home_nb[sub - lo])
    evening = (20 * 3600 + rng.integers(0, 3 * 3600 + 1800, len(sub)))
    morning = 86400 + 6 * 3600 + 1800 + rng.integers(0, 2 * 3600, len(sub))
    split = evening + ((morning - evening) * rng.uniform(0.2, 0.8, len(sub))).astype(np.int64)
    for begin, end in ((evening, split), (split, morning)):
        seen = rng.random(len(sub)) < observed[sub - lo]
        emit(sub[seen], day[seen], begin[seen], end[seen], cell[seen], neighbour[seen])

    # Weekday office hours for those who work: a morning and an afternoon stay.
    sub, day = _block(active[lo:hi] & people.works[lo:hi, None] & weekday[None, :], lo)
    for begin, span in ((8 * 3600 + 1800, 3 * 3600), (13 * 3600 + 1800, 4 * 3600)):  # 08:30-12:30, 13:30-18:30
        seen = rng.random(len(sub)) < observed[sub - lo]
        start = begin + rng.integers(0, 3600, seen.sum())
        emit(sub[seen], day[seen], start, start + span, people.work_cell[sub[seen]], work_nb[sub[seen] - lo])

    # Leisure, errands, visits: a stay somewhere in the city on some days, never overlapping the
    # day's other stays (workers go after work, before the night at home starts at 20:00).
    sub, day = _block(active[lo:hi] & (rng.random((hi - lo, params.days)) < np.where(weekday, 0.25, 0.6)[None, :]), lo)
    where = geography.sample_positions(rng, places, len(sub), centre_bias=2.0)
    leisure_cell = network.serving_cell(where)
    after_work = people.works[sub] & weekday[day]
    start = np.where(after_work, 18 * 3600 + 1800 + rng.integers(0, 1800, len(sub)), 10 * 3600 + rng.integers(0, 7 * 3600, len(sub)))
    length = np.where(after_work, rng.integers(900, 2700, len(sub)), rng.integers(1800, 3 * 3600, len(sub)))
    emit(sub, day, start, start + length, leisure_cell, leisure_cell)

    sub = np.concatenate([p[0] for p in parts])
    order = np.lexsort((np.concatenate([p[1] for p in parts]), sub))
    return {
        "msisdn": people.msisdn[sub[order]],
        "cell_key": network.cell_key[np.concatenate([p[3] for p in parts])[order]],
        "start_time": np.concatenate([p[1] for p in parts])[order],
        "end_time": np.concatenate([p[2] for p in parts])[order],
    }


def _iso_local(epoch_seconds: np.ndarray) -> pa.Array:
    """ISO 8601 with the +08:00 zone, as operator event feeds write it."""
    local = pa.array((epoch_seconds + 8 * 3600).astype("datetime64[s]"))
    return pc.binary_join_element_wise(pc.strftime(local, format="%Y-%m-%dT%H:%M:%S"), pa.scalar("+08:00"), "")


def _observations(rng, params, people: _People, phones: _Phones, sub, day, imei, changed, lo: int, hi: int) -> dict:
    """The window's daily observations, plus monthly sightings of every handset in use before it (the
    monthly terminal photo operators keep), from its first day to its last. Two thirds of the rows carry
    the brand and model the handset reports about itself (device management), which is how clones show."""
    reported = np.where(changed, phones.reported_after[sub], phones.reported_before[sub])
    rows = slice(*np.searchsorted(phones.history["subscriber"], [lo, hi]))
    history = {k: v[rows] for k, v in phones.history.items() if k != "now_first_day"}
    now_first = phones.history["now_first_day"]
    before = lo + np.flatnonzero(now_first[lo:hi] < 0)
    owner = np.concatenate([history["subscriber"], before])
    first = np.concatenate([history["first_day"], now_first[before]])
    last = np.concatenate([history["last_day"], np.full(len(before), -1)])
    handset_imei = np.concatenate([history["imei"], phones.imei_before[before]])
    handset_report = np.concatenate([history["model"], phones.reported_before[before]])
    # Sightings every 30 days from the first day, and the last day itself.
    monthly = (last - first) // 30 + 1
    which = np.repeat(np.arange(len(first)), monthly)
    step = np.arange(len(which)) - np.repeat(np.cumsum(monthly) - monthly, monthly)
    sighted = np.concatenate([which, np.flatnonzero((last - first) % 30 != 0)])
    sighting_day = np.concatenate([first[which] + 30 * step, last[(last - first) % 30 != 0]])
    subs = np.concatenate([sub, owner[sighted]])
    days = np.concatenate([day, sighting_day])
    imeis = np.concatenate([imei, handset_imei[sighted]])
    reports = REPORTED[np.concatenate([reported, handset_report[sighted]])]
    quiet = rng.random(len(subs)) < 1 / 3
    return {
        "msisdn": people.msisdn[subs],
        "date": np.array(params.start_date, dtype="datetime64[D]") + days,
        "imei": handsets.imei_text(imeis),
        "brand": pa.array(reports[:, 0], mask=quiet),
        "model": pa.array(reports[:, 1], mask=quiet),
    }


def _event_table(people: _People, who, time, kind, operator, *, cells: np.ndarray, imeis: np.ndarray) -> dict:
    """Events sorted by subscriber and time; empty cells, IMEIs (0) and operators left out."""
    order = np.lexsort((time, who))
    cell, imei, operator = cells[order], imeis[order], operator[order]
    return {
        "msisdn": people.msisdn[who[order]],
        "time": _iso_local(time[order]),
        "kind": kind[order],
        "cell_key": pa.array(cell, mask=cell == ""),
        "imei": pa.array(handsets.imei_text(imei), mask=imei == 0),
        "operator": pa.array(operator, mask=operator == ""),
    }


def _events_and_observations(rng, params, people: _People, phones: _Phones, network, active, epoch0: int, lo: int, hi: int,
                             leaving: tuple):
    days = params.days
    sub, day = _block(active[lo:hi], lo)
    changed = day >= phones.change_day[sub]
    imei_today = np.where(changed, phones.imei_after[sub], phones.imei_before[sub])
    home_today = np.where(day >= people.move_day[sub], people.new_home_cell[sub], people.home_cell[sub])

    seen = rng.random(len(sub)) < 0.92
    observations = _observations(rng, params, people, phones, sub[seen], day[seen], imei_today[seen], changed[seen], lo, hi)

    kinds, times, cells, imeis, who = [], [], [], [], []

    def add(kind, s, t, c, i):
        kinds.append(np.full(len(s), kind)); times.append(t); cells.append(c); imeis.append(i); who.append(s)

    # The day's first location update.
    lu = rng.random(len(sub)) < 0.3
    add("location_update", sub[lu], epoch0 + day[lu] * 86400 + rng.integers(7 * 3600, 22 * 3600, lu.sum()), network.cell_key[home_today[lu]], imei_today[lu])
    # A handset change is seen as an imei_change event on the day the new IMEI first attaches.
    changers = lo + np.flatnonzero(phones.change_day[lo:hi] < days)
    t = epoch0 + phones.change_day[changers] * 86400 + rng.integers(9 * 3600, 21 * 3600, len(changers))
    add("imei_change", changers, t, network.cell_key[people.home_cell[changers]], phones.imei_after[changers])
    # Overnight power-off/on for some, and the long power-offs planted in _people.
    off = rng.random(len(sub)) < 0.03
    add("power_off", sub[off], epoch0 + day[off] * 86400 + 23 * 3600 + rng.integers(0, 3000, off.sum()), network.cell_key[home_today[off]], imei_today[off])
    add("power_on", sub[off], epoch0 + (day[off] + 1) * 86400 + 6 * 3600 + rng.integers(0, 3600, off.sum()), network.cell_key[home_today[off]], imei_today[off])
    long_off = lo + np.flatnonzero(people.off_from[lo:hi] < days)
    imei_long = np.where(people.off_from[long_off] >= phones.change_day[long_off], phones.imei_after[long_off], phones.imei_before[long_off])
    add("power_off", long_off, epoch0 + people.off_from[long_off] * 86400 - 3600, network.cell_key[people.home_cell[long_off]], imei_long)
    back = long_off[people.off_to[long_off] < days]
    imei_back = np.where(people.off_to[back] >= phones.change_day[back], phones.imei_after[back], phones.imei_before[back])
    add("power_on", back, epoch0 + people.off_to[back] * 86400 + 8 * 3600, network.cell_key[people.home_cell[back]], imei_back)
    # Roaming: travellers leaving the province on some days.
    roam = (people.profile[sub] == PROFILES.index("traveller")) & (rng.random(len(sub)) < 0.08)
    add("roaming_start", sub[roam], epoch0 + day[roam] * 86400 + rng.integers(6 * 3600, 20 * 3600, roam.sum()), np.full(roam.sum(), ""), imei_today[roam])

    who_all, time_all, kind_all = np.concatenate([*who, leaving[0]]), np.concatenate([*times, leaving[1]]), np.concatenate([*kinds, leaving[2]])
    operator_all = np.concatenate([np.full(len(who_all) - len(leaving[0]), ""), leaving[3]])
    # The business systems' events carry no cell; a port-out query or a port names no handset either.
    cell_all = np.concatenate([*cells, np.full(len(leaving[0]), "")])
    imei_all = np.concatenate([*imeis, np.zeros(len(leaving[0]), np.int64)])
    events = _event_table(people, who_all, time_all, kind_all, operator_all, cells=cell_all, imeis=imei_all)
    return events, observations


def _behaviour(params: CityParameters, people: _People, circles: social.Social, interests: online.Interests,
               active: np.ndarray, writer: _Writer, epoch0: int, second_line: np.ndarray) -> None:
    """The app catalogue, daily app usage and call records, block by block; their truth."""
    writer.raw("app_catalogue", online.catalogue_table())
    start = np.array(params.start_date, dtype="datetime64[D]")
    ties = circles.ties
    tie_order = np.argsort(ties.a, kind="stable")
    tie_starts = np.searchsorted(ties.a[tie_order], np.arange(people.n + 1))
    with writer.stream("app_usage_daily") as apps, writer.stream("call_records") as calls:
        for block, lo in enumerate(range(0, people.n, BLOCK)):
            hi = min(lo + BLOCK, people.n)
            apps.write(online.app_usage(np.random.default_rng([params.seed, 9, block]), interests=interests, lo=lo, hi=hi,
                                        active=active, msisdn=people.msisdn, start_date=start))
            calls.write(social.call_records(np.random.default_rng([params.seed, 10, block]), social=circles, lo=lo, hi=hi,
                                            tie_order=tie_order, tie_starts=tie_starts, msisdn=people.msisdn, active=active,
                                            competitor_caller=second_line, epoch0=epoch0, days=params.days))
    _write_behaviour_truth(writer, people, circles, interests, second_line)


def _write_behaviour_truth(writer: _Writer, people: _People, circles: social.Social, interests: online.Interests,
                           second_line: np.ndarray) -> None:
    n, categories = people.n, online.INTEREST_CATEGORIES
    writer.truth_in_parts("interests", ({
        "msisdn": np.repeat(people.msisdn[rows], len(categories)), "category": np.tile(np.array(categories), len(people.msisdn[rows])),
        "latent": interests.latent[rows].ravel().round(4), "interested": interests.interested[rows].ravel(),
    } for rows in _parts(n)))
    groups = circles.groups
    ties = circles.ties
    close_weight, off_share, _ = circles.close_circle_off_net(n)
    writer.truth("people", {
        "msisdn": people.msisdn, "home_group": groups.group, "flatmates": groups.flat,
        "household_onnet_size": np.where(groups.flat, 1, np.bincount(groups.group)[groups.group]),
        "shared_phone": interests.shared_with >= 0, "tethers": interests.tethers,
        "unclassified_share": interests.unclassified.round(4), "second_line": second_line,
        "spam_caller": np.isin(np.arange(n), circles.spam_people),
        "circle_off_net_tendency": circles.off_net_share.round(4),
        "close_circle_weekly_calls": close_weight.round(3),
        "close_circle_off_net_share": off_share.round(4),
        "off_net_heavy_circle": off_share > 0.5,
    })
    writer.truth("spam_numbers", {"number": np.concatenate([people.msisdn[circles.spam_people], circles.spam_outside]),
                                  "on_net": np.arange(len(circles.spam_people) + len(circles.spam_outside)) < len(circles.spam_people)})
    writer.truth_in_parts("ties", ({
        "msisdn": people.msisdn[ties.a[rows]],
        "peer": np.where(ties.b[rows] >= 0, people.msisdn[np.maximum(ties.b[rows], 0)],
                         social.outside_text(ties.outside[rows], ties.network[rows])),
        "peer_network": social.NETWORKS[ties.network[rows]], "kind": social.TIE_KINDS[ties.kind[rows]],
        "weekly_calls": ties.weekly[rows].astype(float).round(3),
    } for rows in _parts(len(ties.a))))


def _write_truth(writer: _Writer, params, people: _People, phones: _Phones, network) -> None:
    start = np.array(params.start_date, dtype="datetime64[D]")
    moved = people.move_day < params.days
    final_home = np.where(moved[:, None], people.new_home, people.home)
    writer.truth(
        "subscribers",
        {
            "msisdn": people.msisdn,
            "profile": np.array(PROFILES)[people.profile],
            "activity": np.array(["low", "mid", "high"])[people.activity],
            "home_lon": people.home[:, 0].round(6), "home_lat": people.home[:, 1].round(6),
            "home_cell": network.cell_key[people.home_cell],
            "works": people.works,
            "work_lon": np.where(people.works, people.work[:, 0], np.nan).round(6),
            "work_lat": np.where(people.works, people.work[:, 1], np.nan).round(6),
            "work_cell": np.where(people.works, network.cell_key[people.work_cell], ""),
            "moved": moved,
            "move_date": np.where(moved, start + np.minimum(people.move_day, params.days - 1), np.datetime64("NaT")),
            "final_home_lon": final_home[:, 0].round(6), "final_home_lat": final_home[:, 1].round(6),
            "final_home_cell": network.cell_key[np.where(moved, people.new_home_cell, people.home_cell)],
            "long_power_off_from": np.where(people.off_from < params.days, start + np.minimum(people.off_from, params.days - 1), np.datetime64("NaT")),
            "long_power_off_days": people.off_to - np.minimum(people.off_from, people.off_to),
            "value": people.traits[:, 0].round(4), "youth": people.traits[:, 1].round(4),
            "data_appetite": people.traits[:, 2].round(4), "sms_appetite": people.traits[:, 3].round(4),
            "travel": people.traits[:, 4].round(4), "five_g_handset": people.traits[:, 5].astype(bool),
        },
    )
    changed = phones.change_day < params.days
    model_names = np.array([f"{m[0]} {m[1]}" for m in handsets.MODELS])
    writer.truth(
        "handset_changes",
        {
            "msisdn": people.msisdn[changed],
            "date": start + phones.change_day[changed],
            "old_imei": handsets.imei_text(phones.imei_before[changed]), "new_imei": handsets.imei_text(phones.imei_after[changed]),
            "old_model": model_names[phones.model_before[changed]], "new_model": model_names[phones.model_after[changed]],
        },
    )
    knock = phones.knockoff_reason != GENUINE
    writer.truth("knockoffs", {"msisdn": people.msisdn[knock], "imei": handsets.imei_text(phones.imei_before[knock]),
                               "reason": KNOCKOFF_REASONS[phones.knockoff_reason[knock]]})
    # Every handset in use during the retained history, oldest first per subscriber: what a detected
    # handset change is checked against (a change is a handset coming into use after another).
    history = phones.history
    in_window = np.flatnonzero(changed)
    subscriber = np.concatenate([history["subscriber"], np.arange(people.n), in_window])
    first_day = np.concatenate([history["first_day"], history["now_first_day"], phones.change_day[in_window]])
    last_day = np.concatenate([history["last_day"], np.where(changed, phones.change_day - 1, params.days - 1), np.full(len(in_window), params.days - 1)])
    model = np.concatenate([history["model"], phones.model_before, phones.model_after[in_window]])
    imei = np.concatenate([history["imei"], phones.imei_before, phones.imei_after[in_window]])
    order = np.lexsort((first_day, subscriber))
    writer.truth_in_parts("handsets", ({
        "msisdn": people.msisdn[subscriber[order[rows]]], "imei": handsets.imei_text(imei[order[rows]]), "model": model_names[model[order[rows]]],
        "first_date": start + first_day[order[rows]], "last_date": start + last_day[order[rows]],
    } for rows in _parts(len(order), TRUTH_PART * 3)))
