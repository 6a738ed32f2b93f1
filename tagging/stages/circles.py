"""The inter-network call model (网间通话模型) and call circles (交往圈): whom each subscriber calls, on which network.

Call records reach the lake as one row per end that is a subscriber, the other end as a pseudonym and its
network (tagging/lake/parties.py). Per partition, set-wise in DuckDB: each subscriber's peers with the contacts
both ways; the **circle** is the peers with contacts both ways (a spam line calls thousands and is called back by
nobody), the **close circle** those with at least one contact a week as well; on-net, off-net and per-operator
shares weighted by contacts and by seconds; calls from competitors' service numbers; and, per product, the share
of the close on-net circle holding it, graded 1-10 like the propensity deciles (`circle_video_vip >= 8`: 70% or
more of the close circle holds it; peers' products come from one bit mask per subscriber, made once per run in
prepare). Each partition also writes its on-net pairs: the call graph stage (microarea/stages/call_graph.py) joins
them up into centrality and households, which need the whole graph.
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from pathlib import Path

import duckdb
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from ..bitmaps import publish_graded_scores, write_graded_bitmaps
from ..expressions import Type
from ..lake.sql import empty_relation, literal
from ..lake.store import connect, files_sql, read_sql
from ..models.reference import in_data_dir, relative_to_data
from . import PartitionWork, Stage, local_offset_seconds, register_stage, snapshot_dir, write_atomically
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

def compute_circles(con: duckdb.DuckDBPyConnection, work: PartitionWork, target: Path) -> dict:
    ids = work.ids_sql
    files = work.lake_files
    previous_from, current_from = work.trend_starts
    earliest = min(work.window_start, previous_from)
    weeks = work.window_days / 7
    operator = settings.OPERATOR_NETWORK
    offnet = f"peer_network NOT IN ('{operator}', 'service_{operator}')"
    service = "peer_network LIKE 'service%'"
    competitor_service = " OR ".join(f"peer_network = 'service_{c}'" for c in COMPETITORS if c != "mvno")
    calls = _window_calls(files, earliest, work.as_of, ids)
    pinned = work.definitions.get("circles", {})
    codes, holdings = pinned.get("products", []), pinned.get("holdings")
    held = (f"(SELECT subscriber_id AS peer_id, * EXCLUDE (subscriber_id) FROM read_parquet({literal(in_data_dir(holdings))}))"
            if holdings else empty_relation(peer_id="BIGINT", **{f"mask_{w}": "UBIGINT" for w in range(max((len(codes) + 63) // 64, 1))}))
    shares = ", ".join(
        f"avg(coalesce((h.mask_{i // 64} >> {i % 64}) & 1, 0)::INTEGER) AS share_{i}" for i in range(len(codes)))
    grades = ", ".join(
        f"CASE WHEN cs.share_{i} IS NOT NULL THEN least(10, 1 + floor(cs.share_{i} * 10))::UTINYINT END AS {circle_score_name(code)}"
        for i, code in enumerate(codes)
    )
    night_from, night_to = settings.LOCATION_NIGHT_HOURS

    def share(condition: str, of: str = "contacts") -> str:
        return f"sum({of}) FILTER (WHERE {condition} AND NOT spam) / NULLIF(sum({of}) FILTER (WHERE NOT spam), 0)"

    # Per (subscriber, peer) once, kept for the features and for the on-net pairs the call graph stage joins up.
    # Times as local seconds since the epoch, compared as integers: converting every row's time to a zone (hour(),
    # or a DATE against a TIMESTAMPTZ) costs more than the grouping itself.
    offset = local_offset_seconds(work.as_of)

    def since(day: date) -> str:
        return f"t >= {int(datetime.combine(day, time(0), tzinfo=timezone.utc).timestamp())}"

    in_window = since(work.window_start)
    night = f"(t // 3600 % 24 >= {night_from} OR t // 3600 % 24 < {night_to})"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE peers AS
        WITH c AS (SELECT subscriber_id, peer, peer_id, peer_network, direction, seconds,
                          epoch(start_time)::BIGINT + {offset} AS t FROM {calls}),
        p AS (
            SELECT subscriber_id, peer, any_value(peer_id) AS peer_id, any_value(peer_network) AS peer_network,
                   count(*) FILTER (WHERE {in_window}) AS contacts,
                   count(*) FILTER (WHERE {in_window} AND direction = 'out') AS outgoing,
                   count(*) FILTER (WHERE {in_window} AND direction = 'in') AS incoming,
                   coalesce(sum(seconds) FILTER (WHERE {in_window}), 0) AS seconds,
                   count(*) FILTER (WHERE {since(current_from)}) AS current_contacts,
                   count(*) FILTER (WHERE {since(previous_from)} AND NOT {since(current_from)}) AS previous_contacts,
                   count(*) FILTER (WHERE {in_window} AND {night}) AS night_contacts
            FROM c GROUP BY subscriber_id, peer
        )
        SELECT *, outgoing > 0 AND incoming > 0 AS two_way,
               outgoing > 0 AND incoming > 0 AND contacts >= {CLOSE_PER_WEEK * weeks} AS close,
               -- a number only calling in, never answered back: spam, telemarketing, a wrong number
               outgoing = 0 AS spam
        FROM p
    """)
    write_atomically(con, "SELECT subscriber_id, peer_id, contacts, two_way, night_contacts FROM peers "
                          "WHERE peer_id IS NOT NULL AND contacts > 0", work.output_path(PAIRS, work.index))
    select = f"""
        WITH agg AS (
            SELECT subscriber_id,
                   count(*) FILTER (WHERE contacts > 0) AS peers_total,
                   count(*) FILTER (WHERE two_way) AS circle_size,
                   count(*) FILTER (WHERE close) AS close_circle_size,
                   avg((NOT ({offnet}))::INTEGER) FILTER (WHERE two_way) AS circle_onnet_share,
                   sum(contacts) FILTER (WHERE close AND {offnet}) / NULLIF(sum(contacts) FILTER (WHERE close), 0) AS close_circle_offnet_share,
                   {share(f"{offnet} AND NOT {service}")} AS offnet_contact_share,
                   {share(f"{offnet} AND NOT {service}", "seconds")} AS offnet_seconds_share,
                   {share("peer_network = 'cu'")} AS cu_contact_share,
                   {share("peer_network = 'ct'")} AS ct_contact_share,
                   {share("peer_network IN ('cbn', 'mvno')")} AS cbn_mvno_contact_share,
                   {share("peer_network = 'fixed'")} AS fixed_contact_share,
                   count(*) FILTER (WHERE two_way AND peer_network IN ({", ".join(f"'{c}'" for c in COMPETITORS)})) AS competitor_peers,
                   sum(current_contacts) FILTER (WHERE {offnet} AND NOT {service} AND NOT spam) / NULLIF(sum(current_contacts) FILTER (WHERE NOT spam), 0)
                   - sum(previous_contacts) FILTER (WHERE {offnet} AND NOT {service} AND NOT spam) / NULLIF(sum(previous_contacts) FILTER (WHERE NOT spam), 0)
                       AS offnet_share_change,
                   coalesce(sum(contacts) FILTER (WHERE {competitor_service}), 0) AS competitor_service_contacts
            FROM peers GROUP BY subscriber_id
        ),
        cs AS (
            SELECT p.subscriber_id{', ' + shares if shares else ''}
            FROM peers p LEFT JOIN {held} h ON h.peer_id = p.peer_id WHERE p.close AND p.peer_id IS NOT NULL GROUP BY p.subscriber_id
        )
        SELECT s.subscriber_id, coalesce(agg.peers_total, 0) AS peers_total, coalesce(agg.circle_size, 0) AS circle_size,
               coalesce(agg.close_circle_size, 0) AS close_circle_size, agg.circle_onnet_share, agg.close_circle_offnet_share,
               agg.offnet_contact_share, agg.offnet_seconds_share, agg.cu_contact_share, agg.ct_contact_share,
               agg.cbn_mvno_contact_share, agg.fixed_contact_share, coalesce(agg.competitor_peers, 0) AS competitor_peers,
               agg.offnet_share_change, coalesce(agg.competitor_service_contacts, 0) AS competitor_service_contacts
               {', ' + grades if grades else ''}
        FROM (SELECT subscriber_id FROM {read_sql('subscribers', files['subscribers'])} WHERE {ids}) s
        LEFT JOIN agg USING (subscriber_id) LEFT JOIN cs USING (subscriber_id)
    """
    write_atomically(con, select, target)
    con.execute("DROP TABLE peers")
    write_graded_bitmaps(con, target, [circle_score_name(code) for code in codes], work.output_path(BITMAPS, work.index))
    rows, with_circle = con.execute(f"SELECT count(*), count(*) FILTER (WHERE circle_size > 0) FROM read_parquet('{target}')").fetchone()
    return {"subscribers": rows, "with_circle": with_circle}


def publish_circles(run, snapshot) -> dict:
    return {"circle_scores": publish_graded_scores(run_id=run.id, stage=BITMAPS, snapshot=snapshot)}


register_stage(Stage(STAGE, _("Call circles"), 32, compute_circles, prepare=prepare_circles, publish=publish_circles))
register_feature_source(FeatureSource(STAGE, circle_features))
