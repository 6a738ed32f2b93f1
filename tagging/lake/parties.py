"""Communication records (calls, SMS) as the lake keeps them: one row per end that is the operator's subscriber.

A switch writes an originating record for the caller and a terminating one for the callee; the lake does the
same, so that a partition of subscriber ids reads only its own rows. The other end is never written as a
number: it becomes `peer`, a 60-bit keyed pseudonym (the first 15 hex digits of the HMAC the product uses for
every number), with its network from the numbering plan and, when it is the operator's subscriber, `peer_id`.
"""

from __future__ import annotations

from ..numbering import network_sql
from ..privacy import pseudonym_sql
from .schemas import Dataset
from .sql import quote

# The lake's columns, in order, before the dataset's own (start_time, seconds, kind...).
PARTY_COLUMNS = {"subscriber_id": "BIGINT", "direction": "VARCHAR", "peer": "BIGINT", "peer_id": "BIGINT",
                 "peer_network": "VARCHAR"}


def peer_key_sql(number: str) -> str:
    """The 60-bit pseudonym of a number (bind $ipad and $opad as for pseudonym_sql)."""
    return f"('0x' || left({pseudonym_sql(number)}, 15))::BIGINT"


def party_rows_sql(spec: Dataset, rows: str, known: str, *, batch: str) -> str:
    """SELECT of the lake's rows for typed `rows` (which carry `_bad`): an 'out' row for a caller who is a
    subscriber, an 'in' row for a callee who is. A record naming no subscriber (a bad row) keeps one 'out' row
    with no subscriber id, so the checks see it. `known` is the (msisdn, subscriber_id) relation; `batch` the
    _batch column's SQL."""
    caller, callee = spec.parties
    rest = ", ".join(f"s.{quote(c)}" for c in spec.column_names if c not in spec.parties)
    # Read (and typed) once for both sides.
    ends = (f"SELECT s.*, a.subscriber_id AS {caller}_id, b.subscriber_id AS {callee}_id FROM {rows} s "
            f"LEFT JOIN {known} a ON a.msisdn = s.{quote(caller)} LEFT JOIN {known} b ON b.msisdn = s.{quote(callee)}")

    def side(direction: str, own: str, other: str, condition: str) -> str:
        return (f"SELECT s.{own}_id AS subscriber_id, '{direction}' AS direction, "
                f"{peer_key_sql(f's.{quote(other)}')} AS peer, s.{other}_id AS peer_id, "
                f"{network_sql(f's.{quote(other)}')} AS peer_network, {rest}, {batch} FROM ends s WHERE {condition}")

    return (f"WITH ends AS MATERIALIZED ({ends}) "
            f"{side('out', caller, callee, f's.{caller}_id IS NOT NULL OR s.{callee}_id IS NULL')} UNION ALL "
            f"{side('in', callee, caller, f's.{callee}_id IS NOT NULL')}")
