"""The on-net call graph of the whole run: centrality (opinion leaders, 意见领袖) and households (家庭圈).

Both need every partition's pairs, so prepare computes them once per run from the on-net pairs the circles stage
wrote, on one worker; partitions read their subscribers' rows. Centrality is PageRank and degree over the two-way
on-net ties (a spam line is called back by nobody, so it has none).

Households: subscribers who live together and call each other, found as connected groups. A pair of subscribers is of one household when they are in contact (a call or SMS in the window), share the home
cell at night (night co-location) or call often with homes in the same res-9 hex, and do not phone each other at
night: people who live together are home together then (at most NIGHT_SHARE of their contacts fall in the night
hours). Flatmates share a home but rarely call; friends in the same building call, and at night too. The pairs are
joined into connected groups (a household may span partitions); a group larger than HOUSEHOLD_MAX is a building's
web of acquaintances, not a household, and is left out.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from django.utils.translation import gettext_lazy as _
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from tagging.expressions import Type
from tagging.lake.sql import empty_relation, literal
from tagging.lake.store import connect, read_sql
from tagging.models.reference import in_data_dir, relative_to_data
from tagging.stages import (
    PartitionWork,
    Stage,
    register_stage,
    snapshot_dir,
    stage_files,
    stage_sql,
    write_atomically,
    write_table_atomically,
)
from tagging.stages.circles import PAIRS
from tagging.stages.features import FeatureSource, features_from, register_feature_source

STAGE = "call_graph"
FREQUENT_PER_WEEK = 2.0  # contacts a week that make a pair sharing a home hex a household without sharing its cell
NIGHT_SHARE = 0.1
# On-net members of one household: Chinese households average 2.62 people (2020 census), few have six or more, and
# not all of a household is on one network.
HOUSEHOLD_MAX = 6

N, B = Type.NUMBER, Type.BOOLEAN
_FEATURES = [
    ("onnet_degree", N, "subscribers", "网内交往人数", "Subscribers of the operator with two-way contacts: the degree in the on-net graph"),
    ("centrality_percentile", N, "0-100", "影响力百分位",
     "PageRank over the two-way on-net call graph, as a percentile of all subscribers (100 = most central)"),
    ("household_size", N, "subscribers", "家庭圈网内人数",
     "Subscribers of the operator in the subscriber's household (1 when none was found): homes in one hex, in contact, "
     "sharing the home cell at night or calling often"),
    ("in_household", B, "", "家庭圈成员", "A household of two or more of the operator's subscribers was found"),
]


def call_graph_features():
    return features_from(_FEATURES, "call_records")


def prepare_call_graph(run) -> dict:
    """Centrality and household groups over every partition's on-net pairs."""
    target = snapshot_dir(run.id) / STAGE / "graph.parquet"
    size = (run.max_subscriber_id or 0) + 1
    con = connect()
    try:
        pairs = f"(SELECT * FROM {stage_sql(run.id, PAIRS)})" if stage_files(run.id, PAIRS) else \
            empty_relation(subscriber_id="BIGINT", peer_id="BIGINT", contacts="BIGINT", two_way="BOOLEAN", night_contacts="BIGINT")
        two_way = con.execute(f"SELECT subscriber_id, peer_id FROM {pairs} WHERE two_way").fetchnumpy()
        homes = f"(SELECT subscriber_id, home_cell, home_h3 FROM {stage_sql(run.id, 'location')} WHERE home_known)"
        found = con.execute(f"""
            SELECT p.subscriber_id, p.peer_id FROM {pairs} p
            JOIN {homes} a ON a.subscriber_id = p.subscriber_id JOIN {homes} b ON b.subscriber_id = p.peer_id
            WHERE p.subscriber_id < p.peer_id AND p.night_contacts <= {NIGHT_SHARE} * p.contacts
              AND (a.home_cell = b.home_cell OR (a.home_h3 = b.home_h3 AND p.contacts >= {FREQUENT_PER_WEEK * run.window_days / 7}))
        """).fetchnumpy()
        a, b = (np.asarray(two_way[k], dtype=np.int64) for k in ("subscriber_id", "peer_id"))
        graph = sparse.csr_matrix((np.ones(len(a), dtype=np.float32), (a, b)), shape=(size, size))
        degree = np.asarray(graph.sum(axis=1)).ravel()
        order = _pagerank(graph, degree).argsort(kind="stable")
        percentile = np.empty(size)
        percentile[order] = np.arange(size) / max(size - 1, 1) * 100
        household, household_size = _households(np.asarray(found["subscriber_id"], dtype=np.int64),
                                                np.asarray(found["peer_id"], dtype=np.int64), size)
        write_table_atomically(pa.table({
            "subscriber_id": np.arange(1, size), "onnet_degree": degree[1:].astype(np.int64),
            "centrality_percentile": np.round(percentile[1:], 2),
            "household_id": pa.array(household[1:], mask=household[1:] < 0), "household_size": household_size[1:],
        }), target, con)
    finally:
        con.close()
    # A household is named by its smallest member: one name per household.
    households = int((household == np.arange(size)).sum())
    return {"call_graph": {"graph": relative_to_data(target), "two_way_onnet_ties": len(a) // 2, "households": households}}


def _pagerank(graph: sparse.csr_matrix, degree: np.ndarray, *, damping: float = 0.85, iterations: int = 40) -> np.ndarray:
    """Power iteration; subscribers without ties spread their rank evenly (the usual dangling-node rule). The two-way
    graph is symmetric (a call between two subscribers is in both ends' rows), so it is its own transpose. In float32,
    which halves each step's time: on a 1 M city a percentile moves by 0.002 at most from float64's, and 40
    iterations move one by 0.14 at most from the converged ranks."""
    n = graph.shape[0]
    rank = np.full(n, 1 / max(n, 1), dtype=np.float32)
    out = np.where(degree > 0, 1 / np.maximum(degree, 1), 0).astype(np.float32)
    dangling = degree == 0
    for _iteration in range(iterations):
        rank = np.float32((1 - damping) / n) + np.float32(damping) * (graph @ (rank * out) + np.float32(rank[dangling].sum() / n))
    return rank


def _households(a: np.ndarray, b: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per subscriber id: the household (its smallest member's id, -1 for none) and its size (1 for none), from the
    household pairs joined into connected groups of 2 to HOUSEHOLD_MAX."""
    graph = sparse.coo_matrix((np.ones(len(a)), (a, b)), shape=(size, size)).tocsr()
    _, label = connected_components(graph, directed=False)
    members = np.bincount(label)[label]
    grouped = (members >= 2) & (members <= HOUSEHOLD_MAX)
    # A household is named by its smallest subscriber id, the same whichever partition reads it.
    first = np.full(label.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(first, label[grouped], np.flatnonzero(grouped))
    return np.where(grouped, first[label], -1), np.where(grouped, members, 1).astype(np.int64)


def compute_call_graph(con: duckdb.DuckDBPyConnection, work: PartitionWork, target: Path) -> dict:
    ids = work.ids_sql
    graph = work.definitions.get("call_graph", {}).get("graph")
    rows = (f"(SELECT * FROM read_parquet({literal(in_data_dir(graph))}) WHERE {ids})" if graph else
            empty_relation(subscriber_id="BIGINT", onnet_degree="BIGINT", centrality_percentile="DOUBLE", household_id="BIGINT",
                           household_size="BIGINT"))
    write_atomically(con, f"""
        SELECT s.subscriber_id, coalesce(g.onnet_degree, 0) AS onnet_degree, g.centrality_percentile,
               coalesce(g.household_size, 1) AS household_size, g.household_id IS NOT NULL AS in_household, g.household_id
        FROM (SELECT subscriber_id FROM {read_sql('subscribers', work.lake_files['subscribers'])} WHERE {ids}) s
        LEFT JOIN {rows} g USING (subscriber_id)
    """, target)
    rows, in_household = con.execute(f"SELECT count(*), count(*) FILTER (WHERE in_household) FROM read_parquet('{target}')").fetchone()
    return {"subscribers": rows, "in_household": in_household}


register_stage(Stage(STAGE, _("On-net call graph"), 33, compute_call_graph, prepare=prepare_call_graph))
register_feature_source(FeatureSource(STAGE, call_graph_features))
