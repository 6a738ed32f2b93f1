"""The inter-network call model (网间通话模型) and call circles (交往圈): whom each subscriber calls, on which network.

Call records reach the lake as one row per end that is a subscriber, the other end as a pseudonym and its
network (tagging/lake/parties.py). Per partition, set-wise: one DuckDB grouping gives each subscriber's peers with
the contacts both ways, and numpy sums those rows per subscriber as weighted counts (the stage took 13% less
time than with the same sums as twenty filtered aggregates in DuckDB, 1 M city). The **circle** is the peers with contacts both ways (a spam line calls thousands and is called back by
nobody), the **close circle** those with at least one contact a week as well; on-net, off-net and per-operator
shares weighted by contacts and by seconds; calls from competitors' service numbers; and, per product, the share
of the close on-net circle holding it, graded 1-10 like the propensity deciles (`circle_video_vip >= 8`: 70% or
more of the close circle holds it; peers' products come from one bit mask per subscriber, made once per run in
prepare). Each partition also writes its on-net pairs: the call graph stage (microarea/stages/call_graph.py) joins
them up into centrality and households, which need the whole graph.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from ..bitmaps import publish_graded_scores, write_graded_bitmaps
from ..expressions import Type
from ..lake.sql import empty_relation, literal
from ..lake.store import connect, files_sql, read_sql
from ..models.reference import in_data_dir, relative_to_data
from ..numbering import NETWORKS
from . import (
    PartitionWork,
    Stage,
    local_offset_seconds,
    register_stage,
    snapshot_dir,
    write_atomically,
    write_table_atomically,
)
from .features import GRADED_UNIT, Feature, FeatureSource, held_masks_sql, product_feature, register_feature_source

STAGE = "circles"
BITMAPS = "circle_bitmaps"
PAIRS = "circle_pairs"  # per partition: its subscribers' on-net peers with contacts (the call graph stage's input)
CLOSE_PER_WEEK = 1.0  # contacts a week (both ways together) that make a two-way peer a close one
COMPETITORS = ("cu", "ct", "cbn", "mvno")
N, B = Type.NUMBER, Type.BOOLEAN


def circle_score_name(product_code: str) -> str:
    """`circle_video_vip`: the share of the close circle holding the product, graded 1-10."""
    return "circle_" + product_feature(product_code).removeprefix("has_")


_FEATURES = [
    ("peers_total", N, "numbers", "通话对端号码数", "Distinct numbers called or calling in the window, spam included"),
    ("circle_size", N, "numbers", "交往圈规模", "Peers with contacts both ways in the window (calls or SMS): the circle"),
    ("close_circle_size", N, "numbers", "紧密交往圈规模",
     f"Circle peers with at least {CLOSE_PER_WEEK:g} contact a week on average"),
    ("circle_onnet_share", N, "0-1", "交往圈网内占比", "Share of the circle on the operator's network; NULL without a circle"),
    ("close_circle_offnet_share", N, "0-1", "紧密交往圈异网占比",
     "Share of the close circle's contacts with numbers off the operator's network (other operators, landlines); NULL without a close circle"),
    ("offnet_contact_share", N, "0-1", "异网通话次数占比", "Share of all contacts (calls and SMS) with numbers off the network, spam excluded"),
    ("offnet_seconds_share", N, "0-1", "异网通话时长占比", "Share of call seconds with numbers off the network"),
    ("cu_contact_share", N, "0-1", "联通号码通话占比", "Share of contacts with China Unicom numbers"),
    ("ct_contact_share", N, "0-1", "电信号码通话占比", "Share of contacts with China Telecom numbers"),
    ("cbn_mvno_contact_share", N, "0-1", "广电及虚拟运营商通话占比", "Share of contacts with China Broadnet and virtual-operator numbers"),
    ("fixed_contact_share", N, "0-1", "固话通话占比", "Share of contacts with landlines"),
    ("competitor_peers", N, "numbers", "异网交往对端数", "Circle peers on competing mobile networks"),
    ("offnet_share_change", N, "share points", "异网通话占比变化",
     "Off-net contact share in the current trend period minus the previous one: rising above 0; NULL without contacts in both"),
    ("competitor_service_contacts", N, "contacts", "竞争对手客服号码来电",
     "Calls and SMS from competitors' service numbers (10010, 10000, 10099...): win-back and offers for a line there"),
]


def circle_features() -> list[Feature]:
    from ..models import Product

    features = [Feature(name, kind, unit, label, description, "call_records") for name, kind, unit, label, description in _FEATURES]
    for code, name, name_en in Product.objects.order_by("code").values_list("code", "name", "name_en"):
        features.append(Feature(
            circle_score_name(code), N, GRADED_UNIT, f"紧密交往圈{name}渗透等级",
            f"Share of the close on-net circle holding {name_en or code}, graded 1-10 (1: under 10%, 10: 90% or more); "
            "NULL without a close on-net circle", "call_records"))
    return features


def _window_calls(lake_files: dict, start: date, end: date, where: str = "true") -> str:
    files = lake_files.get("call_records")
    if not files:
        return empty_relation(subscriber_id="BIGINT", direction="VARCHAR", peer="BIGINT", peer_id="BIGINT",
                              peer_network="VARCHAR", start_time="TIMESTAMPTZ", seconds="BIGINT", kind="VARCHAR")
    return (f"(SELECT * FROM read_parquet({files_sql(files)}) WHERE {where} "
            f"AND start_time >= {literal(str(start))}::TIMESTAMPTZ AND start_time < {literal(str(end))}::TIMESTAMPTZ + INTERVAL 1 DAY)")


# --- prepare: every subscriber's products as bits, once per run ------------------------------------------

def prepare_circles(run) -> dict:
    """Who holds what on the as-of date, as one bit per product, for every subscriber: what each partition joins its
    close circles' peers to."""
    from ..models import Product
    from ..services.snapshots import pinned_paths

    files = pinned_paths(run.lake_batches)
    codes = list(Product.objects.order_by("code").values_list("code", flat=True))
    target = snapshot_dir(run.id) / STAGE / "holdings.parquet"
    select = (held_masks_sql(read_sql("subscriptions", files["subscriptions"]), codes, run.as_of_date)
              if files.get("subscriptions") and codes else
              f"SELECT * FROM {empty_relation(subscriber_id='BIGINT', mask_0='UBIGINT')}")
    con = connect()
    try:
        write_atomically(con, select, target)
    finally:
        con.close()
    return {"circles": {"holdings": relative_to_data(target), "products": codes}}


# --- compute one partition -------------------------------------------------------------------------------

# A peer's network as a small code: list_position's 1-based index in NETWORKS, 0 for none (never in an accepted batch).
NETWORK_CODES = ("", *NETWORKS)


def _network_flags(condition) -> np.ndarray:
    """Per network code, whether the network meets `condition`; indexed by a peer row's code, a flag per peer."""
    return np.array([bool(network) and condition(network) for network in NETWORK_CODES])


def compute_circles(con: duckdb.DuckDBPyConnection, work: PartitionWork, target: Path) -> dict:
    ids = work.ids_sql
    files = work.lake_files
    previous_from, current_from = work.trend_starts
    earliest = min(work.window_start, previous_from)
    calls = _window_calls(files, earliest, work.as_of, ids)
    night_from, night_to = settings.LOCATION_NIGHT_HOURS
    # Times as local seconds since the epoch, compared as integers: converting every row's time to a zone (hour(),
    # or a DATE against a TIMESTAMPTZ) costs more than the grouping itself.
    offset = local_offset_seconds(work.as_of)

    def since(day: date) -> str:
        # "true" from the first day read: the condition is then left out of the aggregates below.
        return "true" if day <= earliest else f"t >= {int(datetime.combine(day, time(0), tzinfo=UTC).timestamp())}"

    def counted(*conditions: str) -> str:
        kept = [c for c in conditions if c != "true"]
        return f" FILTER (WHERE {' AND '.join(kept)})" if kept else ""

    in_window = since(work.window_start)
    night = f"(t // 3600 % 24 >= {night_from} OR t // 3600 % 24 < {night_to})"
    # One grouping per (subscriber, peer), the only pass over the call records. Every aggregate costs a pass over
    # the rows' filter: incoming contacts are the others (direction is 'in' or 'out').
    peers = con.sql(f"""
        WITH c AS (SELECT subscriber_id, peer, peer_id, peer_network, direction, seconds,
                          epoch(start_time)::BIGINT + {offset} AS t FROM {calls}),
        p AS (
            SELECT subscriber_id, peer, any_value(peer_id) AS peer_id, any_value(peer_network) AS peer_network,
                   count(*){counted(in_window)} AS contacts,
                   count(*){counted(in_window, "direction = 'out'")} AS outgoing,
                   coalesce(sum(seconds){counted(in_window)}, 0)::BIGINT AS seconds,
                   count(*){counted(since(current_from))} AS current_contacts,
                   count(*){counted(since(previous_from), f"NOT {since(current_from)}")} AS previous_contacts,
                   count(*){counted(in_window, night)} AS night_contacts
            FROM c GROUP BY subscriber_id, peer
        )
        SELECT subscriber_id, coalesce(peer_id, 0) AS peer_id,
               coalesce(list_position([{', '.join(map(literal, NETWORKS))}], peer_network), 0)::UTINYINT AS network,
               contacts, outgoing, seconds, current_contacts, previous_contacts, night_contacts
        FROM p
    """).to_arrow_table()
    peers = {name: peers.column(name).to_numpy() for name in peers.column_names}
    two_way = (peers["outgoing"] > 0) & (peers["outgoing"] < peers["contacts"])
    onnet = (peers["peer_id"] > 0) & (peers["contacts"] > 0)
    write_table_atomically(pa.table({
        "subscriber_id": peers["subscriber_id"][onnet], "peer_id": peers["peer_id"][onnet],
        "contacts": peers["contacts"][onnet], "two_way": two_way[onnet], "night_contacts": peers["night_contacts"][onnet],
    }), work.output_path(PAIRS, work.index), con)

    pinned = work.definitions.get("circles", {})
    codes, holdings = pinned.get("products", []), pinned.get("holdings")
    held = con.execute(f"SELECT * FROM read_parquet({literal(in_data_dir(holdings))})").fetchnumpy() if holdings else {}
    subscribers = con.execute(f"SELECT subscriber_id FROM {read_sql('subscribers', files['subscribers'])} WHERE {ids} "
                              "ORDER BY subscriber_id").fetchnumpy()["subscriber_id"]
    columns, grades = circle_columns(peers, two_way, subscribers=subscribers, id_from=work.id_from, id_to=work.id_to,
                                     close_contacts=CLOSE_PER_WEEK * work.window_days / 7, held=held, products=len(codes))
    write_table_atomically(pa.table({
        "subscriber_id": subscribers, **columns,
        **{circle_score_name(code): grade for code, grade in zip(codes, grades, strict=True)},
    }), target, con)
    write_graded_bitmaps(con, target, [circle_score_name(code) for code in codes], work.output_path(BITMAPS, work.index))
    return {"subscribers": len(subscribers), "with_circle": int((columns["circle_size"] > 0).sum())}


def circle_columns(peers: dict[str, np.ndarray], two_way: np.ndarray, *, subscribers: np.ndarray, id_from: int,
                   id_to: int, close_contacts: float, held: dict[str, np.ndarray],
                   products: int) -> tuple[dict[str, np.ndarray | pa.Array], list[pa.Array]]:
    """Each subscriber's circle features, from their rows of (subscriber, peer) contacts: sums per subscriber as
    weighted counts (np.bincount) over masks of the peer rows, in the order of `subscribers`. A share is NULL where
    its denominator is 0 (no contacts of that kind), 0 where there are contacts but none of the kind counted."""
    operator = settings.OPERATOR_NETWORK
    at = peers["subscriber_id"] - id_from
    rows = subscribers - id_from
    size = id_to - id_from
    network, peer_id = peers["network"], peers["peer_id"]
    contacts, seconds, current, previous = (peers[name].astype(np.float64) for name in (
        "contacts", "seconds", "current_contacts", "previous_contacts"))
    own = _network_flags(lambda n: n in (operator, f"service_{operator}"))[network]
    service = _network_flags(lambda n: n.startswith("service"))[network]
    counted = peers["outgoing"] > 0  # a number only calling in, never answered back: spam, telemarketing, a wrong number
    close = two_way & (contacts >= close_contacts)
    offnet_mobile = ~own & ~service & counted

    def total(where: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        # Weights rather than a selection of rows: one sequential pass, float weights taken as they are.
        return np.bincount(at, weights=where if weights is None else where * weights, minlength=size)[rows]

    def share(numerator: np.ndarray, denominator: np.ndarray, over: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Of what `over` sums (the `denominator` rows), the part on `numerator` rows."""
        return np.divide(total(numerator & denominator, weights), over, out=np.full(len(rows), np.nan), where=over > 0)

    def of(*networks: str) -> np.ndarray:
        return _network_flags(lambda n: n in networks)[network]

    circle_size, close_contacts_total = total(two_way), total(close, contacts)
    spoken = {name: total(counted, weights) for name, weights in (("contacts", contacts), ("seconds", seconds),
                                                                  ("current", current), ("previous", previous))}
    columns = {
        "peers_total": total(contacts > 0).astype(np.int64),
        "circle_size": circle_size.astype(np.int64),
        "close_circle_size": total(close).astype(np.int64),
        "circle_onnet_share": share(own, two_way, circle_size),
        "close_circle_offnet_share": share(~own, close, close_contacts_total, contacts),
        "offnet_contact_share": share(offnet_mobile, counted, spoken["contacts"], contacts),
        "offnet_seconds_share": share(offnet_mobile, counted, spoken["seconds"], seconds),
        "cu_contact_share": share(of("cu"), counted, spoken["contacts"], contacts),
        "ct_contact_share": share(of("ct"), counted, spoken["contacts"], contacts),
        "cbn_mvno_contact_share": share(of("cbn", "mvno"), counted, spoken["contacts"], contacts),
        "fixed_contact_share": share(of("fixed"), counted, spoken["contacts"], contacts),
        "competitor_peers": total(two_way & of(*COMPETITORS)).astype(np.int64),
        "offnet_share_change": (share(offnet_mobile, counted, spoken["current"], current)
                                - share(offnet_mobile, counted, spoken["previous"], previous)),
        "competitor_service_contacts": total(of(*(f"service_{c}" for c in COMPETITORS)), contacts).astype(np.int64),
    }
    columns = {name: pa.array(values, mask=np.isnan(values)) if values.dtype.kind == "f" else values
               for name, values in columns.items()}
    # The close on-net circle's products: each peer's bits, from a dense array of every subscriber's masks by id.
    circle = close & (peer_id > 0)
    members = total(circle)
    lookup = np.zeros(max(int(peer_id.max(initial=0)), int(held["subscriber_id"].max(initial=0))) + 1, dtype=np.uint64)
    masks = []
    for word in range((products + 63) // 64):
        lookup[held["subscriber_id"]] = held[f"mask_{word}"]
        masks.append(lookup[peer_id])
    grades = []
    for i in range(products):
        holding = ((masks[i // 64] >> np.uint64(i % 64)) & np.uint64(1)).astype(bool)
        share_held = total(circle & holding) / np.maximum(members, 1)
        grades.append(pa.array(np.minimum(10, 1 + np.floor(share_held * 10)).astype(np.uint8), mask=members == 0))
    return columns, grades


def publish_circles(run, snapshot) -> dict:
    return {"circle_scores": publish_graded_scores(run_id=run.id, stage=BITMAPS, snapshot=snapshot)}


register_stage(Stage(STAGE, _("Call circles"), 32, compute_circles, prepare=prepare_circles, publish=publish_circles))
register_feature_source(FeatureSource(STAGE, circle_features))
