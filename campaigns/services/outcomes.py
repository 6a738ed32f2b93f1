"""Contact outcomes reported for a campaign through the API: every row must name one of the campaign's
targets, or of its random control group, which is contacted too (never a holdout, never someone else), in
the reporter's districts; a row that does not is refused by its line alone, the same whether the number
belongs to anyone or not, so the answer can never tell a guessed number from a real one. Then the rows go through the contact_results ingest like a file would (types, times, duplicates against
the lake, all or nothing; the same upload twice changes nothing)."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from tagging.lake import store
from tagging.models import IngestBatch
from tagging.services.ingest import ingest_file

from ..models import Campaign
from .campaigns import campaign_districts, contacted_sql, target_list_sql

FIELDS = ("msisdn", "contacted_at", "channel", "outcome")
NOT_YOURS = "not one of your targets in this campaign"


class OutcomesRefused(ValueError):
    def __init__(self, message: str, errors: list[dict]):
        super().__init__(message)
        self.errors = errors


def record_outcomes(*, campaign: Campaign, rows: list[dict], user) -> IngestBatch:
    if campaign.status == Campaign.Status.DRAFT:
        raise OutcomesRefused("the campaign is not frozen: it has no targets to report on", [])
    missing = [{"line": i + 1, "column": field, "reason": "missing"}
               for i, row in enumerate(rows) for field in FIELDS if not str(row.get(field, "")).strip()]
    if not rows or missing:
        raise OutcomesRefused("no rows" if not rows else "rows with missing fields", missing[:100])
    msisdns = [str(row["msisdn"]).strip() for row in rows]
    con = store.reader()
    try:
        known = {m for (m,) in con.execute(
            f"SELECT s.msisdn::VARCHAR FROM {target_list_sql(campaign)} t "
            f"JOIN {store.current_sql('subscribers')} s USING (subscriber_id) "
            f"WHERE {contacted_sql(campaign)} AND t.region_code IN (SELECT unnest($districts::VARCHAR[])) "
            f"AND s.msisdn::VARCHAR IN (SELECT unnest($msisdns::VARCHAR[]))",
            {"msisdns": msisdns, "districts": campaign_districts(campaign, user)}).fetchall()}
    finally:
        con.close()
    strangers = [{"line": i + 1, "column": "msisdn", "reason": f"line {i + 1}: {NOT_YOURS}"}
                 for i, m in enumerate(msisdns) if m not in known]
    if strangers:
        raise OutcomesRefused(f"{len(strangers)} of {len(rows)} rows are not your targets in this campaign; nothing was recorded",
                              strangers[:100])
    body = io.StringIO()
    writer = csv.writer(body, lineterminator="\n")
    writer.writerow(("campaign", *FIELDS))
    writer.writerows((campaign.id, *(str(row[f]).strip() for f in FIELDS)) for row in rows)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"campaign-{campaign.id}-outcomes.csv"
        path.write_text(body.getvalue())
        return ingest_file(dataset="contact_results", path=path, user=user)
