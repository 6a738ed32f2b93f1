"""Households (家庭圈): subscribers who live together and call each other, found as connected groups.

A pair of subscribers is of one household when they are in contact (a call or SMS in the window), share the home
cell at night (night co-location) or call often with homes in the same res-9 hex, and do not phone each other at
night: people who live together are home together then (at most NIGHT_SHARE of their contacts fall in the night
hours). Flatmates share a home but rarely call; friends in the same building call, and at night too. The pairs are
joined into connected groups over the whole run (a household may span partitions), once, in prepare; a group larger
than HOUSEHOLD_MAX is a building's web of acquaintances, not a household, and is left out. Partitions read their
members' household.
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
    stage_sql,
    write_atomically,
    write_table_atomically,
)
from tagging.stages.features import FeatureSource, features_from, register_feature_source

STAGE = "households"
FREQUENT_PER_WEEK = 2.0  # contacts a week that make a pair sharing a home hex a household without sharing its cell
NIGHT_SHARE = 0.1
# On-net members of one household: Chinese households average 2.62 people (2020 census), few have six or more, and
# not all of a household is on one network.
HOUSEHOLD_MAX = 6

N, B = Type.NUMBER, Type.BOOLEAN
_FEATURES = [
    ("household_size", N, "subscribers", "家庭圈网内人数",
     "Subscribers of the operator in the subscriber's household (1 when none was found): homes in one hex, in contact, "
     "sharing the home cell at night or calling often"),
    ("in_household", B, "", "家庭圈成员", "A household of two or more of the operator's subscribers was found"),
]


def household_features():
    return features_from(_FEATURES, "call_records")


def prepare_households(run) -> dict:
    """Household pairs of the whole run, joined into connected groups."""
    pairs_file = run.definitions.get("circles", {}).get("onnet_pairs")
    target = snapshot_dir(run.id) / STAGE / "members.parquet"
    con = connect()
    try:
        pairs = empty_relation(subscriber_id="BIGINT", peer_id="BIGINT", contacts="BIGINT") if not pairs_file else \
            f"read_parquet({literal(in_data_dir(pairs_file))})"
        homes = f"(SELECT subscriber_id, home_cell, home_h3 FROM {stage_sql(run.id, 'location')} WHERE home_known)"
        found = con.execute(f"""
            SELECT p.subscriber_id, p.peer_id FROM {pairs} p
            JOIN {homes} a ON a.subscriber_id = p.subscriber_id JOIN {homes} b ON b.subscriber_id = p.peer_id
            WHERE p.subscriber_id < p.peer_id AND p.contacts > 0 AND p.night_contacts <= {NIGHT_SHARE} * p.contacts
              AND (a.home_cell = b.home_cell OR (a.home_h3 = b.home_h3 AND p.contacts >= {FREQUENT_PER_WEEK * run.window_days / 7}))
        """).fetchnumpy()
    finally:
        con.close()
    a, b = np.asarray(found["subscriber_id"], dtype=np.int64), np.asarray(found["peer_id"], dtype=np.int64)
    size = (run.max_subscriber_id or 0) + 1
    graph = sparse.coo_matrix((np.ones(len(a)), (a, b)), shape=(size, size)).tocsr()
    _, label = connected_components(graph, directed=False)
    members = np.bincount(label, minlength=label.max() + 1 if len(label) else 0)[label] if len(label) else np.zeros(0, int)
    grouped = np.flatnonzero((members >= 2) & (members <= HOUSEHOLD_MAX))
    # A household is named by its smallest subscriber id, the same whichever partition reads it.
    first = np.full(label.max() + 1 if len(label) else 0, np.iinfo(np.int64).max)
    np.minimum.at(first, label[grouped], grouped)
    write_table_atomically(pa.table({"subscriber_id": grouped, "household_id": first[label[grouped]],
                                     "household_size": members[grouped].astype(np.int64)}), target)
    return {"households": {"members": relative_to_data(target), "pairs": int(len(a)),
                           "households": int(len(np.unique(label[grouped]))),
                           "groups_too_large": int(len(np.unique(label[members > HOUSEHOLD_MAX])))}}


def compute_households(con: duckdb.DuckDBPyConnection, work: PartitionWork, target: Path) -> dict:
    ids = work.ids_sql
    members = work.definitions.get("households", {}).get("members")
    found = (f"(SELECT * FROM read_parquet({literal(in_data_dir(members))}) WHERE {ids})" if members else
             empty_relation(subscriber_id="BIGINT", household_id="BIGINT", household_size="BIGINT"))
    write_atomically(con, f"""
        SELECT s.subscriber_id, coalesce(h.household_size, 1) AS household_size, h.household_id IS NOT NULL AS in_household,
               h.household_id
        FROM (SELECT subscriber_id FROM {read_sql('subscribers', work.lake_files['subscribers'])} WHERE {ids}) s
        LEFT JOIN {found} h USING (subscriber_id)
    """, target)
    rows, in_household = con.execute(f"SELECT count(*), count(*) FILTER (WHERE in_household) FROM read_parquet('{target}')").fetchone()
    return {"subscribers": rows, "in_household": in_household}


register_stage(Stage(STAGE, _("Households"), 33, compute_households, prepare=prepare_households))
register_feature_source(FeatureSource(STAGE, household_features))
