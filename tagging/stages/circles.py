"""The inter-network call model (网间通话模型) and call circles (交往圈): whom each subscriber calls, on which network.

Call records reach the lake as one row per end that is a subscriber, the other end as a pseudonym and its
network (tagging/lake/parties.py). Per partition, set-wise in DuckDB: each subscriber's peers with the contacts
both ways; the **circle** is the peers with contacts both ways (a spam line calls thousands and is called back by
nobody), the **close circle** those with at least one contact a week as well; on-net, off-net and per-operator
shares weighted by contacts and by seconds; calls from competitors' service numbers; and, per product, the share
of the close on-net circle holding it, graded 1-10 like the propensity deciles (`circle_video_vip >= 8`: 70% or
more of the close circle holds it). Centrality needs the whole on-net graph, so prepare computes it once per run
(PageRank and degree over the two-way on-net ties) and partitions read it.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from scipy import sparse

from ..bitmaps import merge_bitmaps, to_bitmap, write_bitmaps
from ..expressions import Type
from ..lake.sql import empty_relation, literal
from ..lake.store import connect, files_sql, read_sql
from ..models.reference import in_data_dir, relative_to_data
from . import PartitionWork, Stage, register_stage, snapshot_dir, stage_files, write_atomically, write_table_atomically
from .features import GRADED_UNIT, Feature, FeatureSource, product_feature, register_feature_source

STAGE = "circles"
BITMAPS = "circle_bitmaps"
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
    ("onnet_degree", N, "subscribers", "网内交往人数", "Subscribers of the operator with two-way contacts: the degree in the on-net graph"),
    ("centrality_percentile", N, "0-100", "影响力百分位",
     "PageRank over the two-way on-net call graph, as a percentile of all subscribers (100 = most central)"),
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


def _window_calls(work_or_run_files: dict, start: date, end: date, where: str = "true") -> str:
    files = work_or_run_files.get("call_records")
    if not files:
        return empty_relation(subscriber_id="BIGINT", direction="VARCHAR", peer="BIGINT", peer_id="BIGINT",
                              peer_network="VARCHAR", start_time="TIMESTAMPTZ", seconds="BIGINT", kind="VARCHAR")
    return (f"(SELECT * FROM read_parquet({files_sql(files)}) WHERE {where} "
            f"AND start_time >= {literal(str(start))}::TIMESTAMPTZ AND start_time < {literal(str(end))}::TIMESTAMPTZ + INTERVAL 1 DAY)")


# --- prepare: centrality over the whole on-net graph -------------------------------------------------------

def prepare_circles(run) -> dict:
    """PageRank and degree over the two-way on-net ties of every subscriber, once per run."""
    from ..services.snapshots import pinned_paths

    files = pinned_paths(run.lake_batches)
    start = run.as_of_date - timedelta(days=run.window_days - 1)
    folder = snapshot_dir(run.id) / STAGE
    onnet_pairs = folder / "onnet_pairs.parquet"
    con = connect()
    try:
        # Every on-net pair with contacts in the window, once per end: what centrality and households are built on.
        night_from, night_to = settings.LOCATION_NIGHT_HOURS
        write_atomically(con, (
            f"SELECT subscriber_id, peer_id, count(*) AS contacts, count(*) FILTER (WHERE direction = 'out') > 0 "
            f"AND count(*) FILTER (WHERE direction = 'in') > 0 AS two_way, "
            f"count(*) FILTER (WHERE hour(start_time) >= {night_from} OR hour(start_time) < {night_to}) AS night_contacts "
            f"FROM {_window_calls(files, start, run.as_of_date, 'peer_id IS NOT NULL')} GROUP BY ALL"), onnet_pairs)
        pairs = con.execute(f"SELECT subscriber_id, peer_id FROM read_parquet({literal(str(onnet_pairs))}) WHERE two_way").fetchnumpy()
    finally:
        con.close()
    size = (run.max_subscriber_id or 0) + 1
    a, b = np.asarray(pairs["subscriber_id"], dtype=np.int64), np.asarray(pairs["peer_id"], dtype=np.int64)
    graph = sparse.csr_matrix((np.ones(len(a)), (a, b)), shape=(size, size))
    degree = np.asarray(graph.sum(axis=1)).ravel()
    rank = _pagerank(graph, degree)
    order = rank.argsort(kind="stable")
    percentile = np.empty(size)
    percentile[order] = np.arange(size) / max(size - 1, 1) * 100
    ids = np.arange(1, size)
    target = folder / "centrality.parquet"
    write_table_atomically(pa.table({"subscriber_id": ids, "onnet_degree": degree[1:].astype(np.int64),
                                     "centrality_percentile": np.round(percentile[1:], 2)}), target)
    return {"circles": {"centrality": relative_to_data(target), "onnet_pairs": relative_to_data(onnet_pairs),
                        "two_way_onnet_ties": int(len(a) // 2)}}


def _pagerank(graph: sparse.csr_matrix, degree: np.ndarray, *, damping: float = 0.85, iterations: int = 40) -> np.ndarray:
    """Power iteration; subscribers without ties spread their rank evenly (the usual dangling-node rule)."""
    n = graph.shape[0]
    if n == 0:
        return np.zeros(0)
    rank = np.full(n, 1.0 / n)
    out = np.where(degree > 0, 1.0 / np.maximum(degree, 1), 0.0)
    transposed = graph.T.tocsr()
    for _iteration in range(iterations):
        dangling = rank[degree == 0].sum()
        rank = (1 - damping) / n + damping * (transposed @ (rank * out) + dangling / n)
    return rank


# --- compute one partition -------------------------------------------------------------------------------

def compute_circles(con: duckdb.DuckDBPyConnection, work: PartitionWork, target: Path) -> dict:
    from ..models import Product
    from ..services.audiences import GRADES

    ids = work.ids_sql
    files = work.lake_files
    trend = work.definitions["trend"]
    previous_from, current_from = (date.fromisoformat(trend[k][0]) for k in ("previous", "current"))
    earliest = min(work.window_start, previous_from)
    weeks = work.window_days / 7
    operator = settings.OPERATOR_NETWORK
    offnet = f"peer_network NOT IN ('{operator}', 'service_{operator}')"
    service = "peer_network LIKE 'service%'"
    competitor_service = " OR ".join(f"peer_network = 'service_{c}'" for c in COMPETITORS if c != "mvno")
    calls = _window_calls(files, earliest, work.as_of, ids)
    codes = list(Product.objects.order_by("code").values_list("code", flat=True))
    holdings = (
        f"(SELECT subscriber_id AS peer_id, list(DISTINCT product_code) AS products FROM {read_sql('subscriptions', files['subscriptions'])} "
        f"WHERE start_date <= DATE '{work.as_of}' AND (end_date IS NULL OR end_date >= DATE '{work.as_of}') GROUP BY ALL)"
        if files.get("subscriptions") else empty_relation(peer_id="BIGINT", products="VARCHAR[]")
    )
    shares = ", ".join(
        f"avg(list_contains(h.products, '{code}')::INTEGER) FILTER (WHERE p.close AND p.peer_id IS NOT NULL) AS share_{i}"
        for i, code in enumerate(codes)
    )
    grades = ", ".join(
        f"CASE WHEN cs.share_{i} IS NOT NULL THEN least(10, 1 + floor(cs.share_{i} * 10))::UTINYINT END AS {circle_score_name(code)}"
        for i, code in enumerate(codes)
    )
    centrality = work.definitions.get("circles", {}).get("centrality")
    centrality_sql = (f"read_parquet({literal(str(in_data_dir(centrality)))})" if centrality
                      else empty_relation(subscriber_id="BIGINT", onnet_degree="BIGINT", centrality_percentile="DOUBLE"))

    def share(condition: str, of: str = "contacts") -> str:
        return f"sum({of}) FILTER (WHERE {condition} AND NOT spam) / NULLIF(sum({of}) FILTER (WHERE NOT spam), 0)"

    select = f"""
        WITH c AS (SELECT * FROM {calls}),
        p AS (
            SELECT subscriber_id, peer, any_value(peer_id) AS peer_id, any_value(peer_network) AS peer_network,
                   count(*) FILTER (WHERE start_time >= DATE '{work.window_start}') AS contacts,
                   count(*) FILTER (WHERE start_time >= DATE '{work.window_start}' AND direction = 'out') AS outgoing,
                   count(*) FILTER (WHERE start_time >= DATE '{work.window_start}' AND direction = 'in') AS incoming,
                   coalesce(sum(seconds) FILTER (WHERE start_time >= DATE '{work.window_start}'), 0) AS seconds,
                   count(*) FILTER (WHERE start_time >= DATE '{current_from}') AS current_contacts,
                   count(*) FILTER (WHERE start_time >= DATE '{previous_from}' AND start_time < DATE '{current_from}') AS previous_contacts
            FROM c GROUP BY subscriber_id, peer
        ),
        p2 AS (
            SELECT *, outgoing > 0 AND incoming > 0 AS two_way,
                   outgoing > 0 AND incoming > 0 AND contacts >= {CLOSE_PER_WEEK * weeks} AS close,
                   -- a number only calling in, never answered back: spam, telemarketing, a wrong number
                   outgoing = 0 AS spam
            FROM p WHERE contacts > 0 OR current_contacts > 0 OR previous_contacts > 0
        ),
        agg AS (
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
            FROM p2 GROUP BY subscriber_id
        ),
        cs AS (
            SELECT p.subscriber_id{', ' + shares if shares else ''}
            FROM p2 p LEFT JOIN {holdings} h ON h.peer_id = p.peer_id WHERE p.close AND p.peer_id IS NOT NULL GROUP BY p.subscriber_id
        )
        SELECT s.subscriber_id, coalesce(agg.peers_total, 0) AS peers_total, coalesce(agg.circle_size, 0) AS circle_size,
               coalesce(agg.close_circle_size, 0) AS close_circle_size, agg.circle_onnet_share, agg.close_circle_offnet_share,
               agg.offnet_contact_share, agg.offnet_seconds_share, agg.cu_contact_share, agg.ct_contact_share,
               agg.cbn_mvno_contact_share, agg.fixed_contact_share, coalesce(agg.competitor_peers, 0) AS competitor_peers,
               agg.offnet_share_change, coalesce(agg.competitor_service_contacts, 0) AS competitor_service_contacts,
               coalesce(g.onnet_degree, 0) AS onnet_degree, g.centrality_percentile{', ' + grades if grades else ''}
        FROM (SELECT subscriber_id FROM {read_sql('subscribers', files['subscribers'])} WHERE {ids}) s
        LEFT JOIN agg USING (subscriber_id) LEFT JOIN cs USING (subscriber_id)
        LEFT JOIN (SELECT * FROM {centrality_sql} WHERE {ids}) g USING (subscriber_id)
    """
    write_atomically(con, select, target)
    entries = []
    if codes:
        data = con.execute(f"SELECT subscriber_id, {', '.join(circle_score_name(c) for c in codes)} FROM read_parquet('{target}')").fetchnumpy()
        subscriber_ids = np.asarray(data["subscriber_id"])
        for code in codes:
            graded = np.ma.filled(data[circle_score_name(code)], 0)
            entries += [("score", f"{circle_score_name(code)}={grade}", to_bitmap(subscriber_ids[graded == grade])) for grade in GRADES]
    write_bitmaps(entries, work.output_path(BITMAPS, work.index))
    rows, with_circle = con.execute(f"SELECT count(*), count(*) FILTER (WHERE circle_size > 0) FROM read_parquet('{target}')").fetchone()
    return {"subscribers": rows, "with_circle": with_circle}


def publish_circles(run, snapshot) -> dict:
    from ..models import ScoreSnapshot

    scores = sorted(merge_bitmaps(stage_files(run.id, BITMAPS)).items())
    ScoreSnapshot.objects.bulk_create([
        ScoreSnapshot(snapshot=snapshot, code=key.split("=")[0], grade=int(key.split("=")[1]),
                      subscriber_count=len(bitmap), bitmap=bitmap.serialize())
        for (_, key), bitmap in scores
    ])
    return {"circle_scores": len(scores)}


register_stage(Stage(STAGE, _("Call circles"), 32, compute_circles, prepare=prepare_circles, publish=publish_circles))
register_feature_source(FeatureSource(STAGE, circle_features))
