"""Churn warning (离网预警): churn planted in the simulated city, and the churn model of the snapshot run measured
against the planted hazard on held-out subscribers; its deciles in audiences and rules, its drivers in the API."""

import csv
import io
from datetime import timedelta

import duckdb
import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient
from sklearn.metrics import roc_auc_score

from campaigns.churn import top_decile_lift
from campaigns.models import Campaign, ChurnModel
from campaigns.services.campaigns import create_campaign, freeze_campaign
from campaigns.services.exports import plan_export, stream
from campaigns.stages.churn import HELD_OUT
from microarea.services.imports import import_micro_areas
from simulation import churn as planted
from tagging.lake.schemas import DATASETS
from tagging.lake.store import read_sql
from tagging.models import Region, ScoreSnapshot, SnapshotRun, StaffProfile
from tagging.services.audiences import preview_audience
from tagging.services.ingest import INGEST_ORDER, ingest_file
from tagging.services.snapshots import pinned_paths, start_snapshot_run
from tagging.services.tags import install_starting_catalogue, preview_rule
from tagging.stages import snapshot_dir
from tagging.stages.features import BEHAVIOUR_SOURCES, catalogue

from .conftest import CHURN_CITY, SMALL_CITY, WITHOUT_SIGNALLING, ingest_city
from .factories import staff_user

WINDOW = 30


def q(sql: str):
    return duckdb.connect().execute(sql).fetchall()


# --- the simulated city ------------------------------------------------------------------------------------

def test_leavers_close_or_port_out_and_nothing_happens_after(small_city):
    truth = f"read_parquet('{small_city}/truth/churn.parquet')"
    subscribers = f"read_csv('{small_city}/subscribers.csv', all_varchar=true)"
    events = f"read_csv('{small_city}/events.csv', all_varchar=true)"
    # The subscribers file says what the truth says: each leaver in the window with its status and date.
    left = q(f"""SELECT t.kind, s.status, t.churn_date = s.status_date::DATE FROM {truth} t JOIN {subscribers} s USING (msisdn)
                 WHERE t.churn_date BETWEEN DATE '{SMALL_CITY.start_date}' AND DATE '{SMALL_CITY.end_date}'""")
    assert left and all(same for _, _, same in left)
    assert {(kind, status) for kind, status, _ in left} <= {("close", "closed"), ("port_out", "ported_out")}
    # Every port in the window is an event naming a receiving operator; queries come before their port.
    ports = q(f"""SELECT count(*), count(*) FILTER (WHERE e.operator IN ('cu', 'ct', 'cbn') AND e.time::DATE = t.churn_date)
                  FROM {truth} t JOIN {events} e ON e.msisdn = t.msisdn AND e.kind = 'port_out'""")[0]
    assert ports[0] == ports[1] == sum(kind == "port_out" for kind, _, _ in left)
    assert q(f"""SELECT count(*) FROM {truth} t JOIN {events} e ON e.msisdn = t.msisdn AND e.kind = 'port_out_query'
                 WHERE e.time::DATE >= t.churn_date""")[0][0] == 0
    # No usage on or after the day a line left, and no product held past it.
    assert q(f"""SELECT count(*) FROM {truth} t JOIN read_csv('{small_city}/usage_daily.csv', all_varchar=true) u USING (msisdn)
                 WHERE u.date::DATE >= t.churn_date""")[0][0] == 0
    assert q(f"""SELECT count(*) FROM {truth} t JOIN read_csv('{small_city}/subscriptions.csv', all_varchar=true) p USING (msisdn)
                 WHERE t.churn_date <= DATE '{SMALL_CITY.end_date}'
                   AND coalesce(p.end_date::DATE, DATE '2100-01-01') > t.churn_date""")[0][0] == 0


def population(n: int, seed: int = 3, **overrides):
    rng = np.random.default_rng(seed)
    signals = dict(days=60, active=np.ones(n, bool), declining=rng.random(n) < 0.07, off_net_circle=rng.random(n),
                   handset_days=rng.integers(30, 1500, n), value=rng.normal(size=n), tenure_days=rng.integers(0, 4000, n),
                   second_line=rng.random(n) < 0.1, circle_network=np.full(n, -1), joined_day=np.full(n, -9999))
    return {**signals, **overrides}


def test_planted_churn_runs_at_the_documented_monthly_rate_and_a_retention_offer_lowers_it():
    n = 200_000
    churn = planted.plant_churn(np.random.default_rng(1), **population(n))
    left = (churn.churn_day >= 0) & (churn.churn_day < 60)
    assert abs(left.mean() / 2 - planted.MONTHLY_CHURN) < 0.002  # two months
    # Offering half of them retention on day 0: the same draws, so only the contacted change, by the planted share.
    contacted = np.arange(n) % 2 == 0
    offered = planted.plant_churn(np.random.default_rng(1), **population(n),
                                  contacts={int(i): 0 for i in np.flatnonzero(contacted)})
    decided = lambda c, who: ((c.decided_day >= 0) & (c.decided_day < 60) & who).sum()  # noqa: E731
    assert np.array_equal(churn.decided_day[~contacted], offered.decided_day[~contacted])
    reduction = 1 - decided(offered, contacted) / decided(churn, contacted)
    assert abs(reduction - planted.RETENTION_REDUCTION) < 0.05, reduction
    # The same offers made after the city was written (with_offers, from the draws) give the same futures.
    afterwards = planted.with_offers(churn, {int(i): 0 for i in np.flatnonzero(contacted)}, 60)
    assert np.array_equal(afterwards.decided_day, offered.decided_day)
    assert np.array_equal(afterwards.churn_day, offered.churn_day)
    # Nobody leaves before they joined.
    late = planted.plant_churn(np.random.default_rng(1), **population(1000, joined_day=np.full(1000, 40)))
    assert (late.decided_day[late.decided_day < planted.NEVER] >= 40).all()


# --- bad input --------------------------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("dataset, header, row, message", [
    ("subscribers", "msisdn,brand,plan,join_date,region_code,status,marketing_opt_out,status_date",
     "13800000001,神州行,4G飞享 58元,2020-01-01,440604,ported_out,false,", "needs the date it left"),
    ("subscribers", "msisdn,brand,plan,join_date,region_code,status,marketing_opt_out,status_date",
     "13800000001,神州行,4G飞享 58元,2020-01-01,440604,closed,false,2019-05-01", "status date before the join date"),
    ("subscribers", "msisdn,brand,plan,join_date,region_code,status,marketing_opt_out,status_date",
     "13800000001,神州行,4G飞享 58元,2020-01-01,440604,closed,false,2099-05-01", "status date in the future"),
    ("subscribers", "msisdn,brand,plan,join_date,region_code,status,marketing_opt_out,commitment_end",
     "13800000001,神州行,4G飞享 58元,2020-01-01,440604,active,false,2027-13-01", "commitment_end"),
    ("events", "msisdn,time,kind,operator", "{msisdn},2026-10-01 10:00:00,port_out,", "port_out without the receiving operator"),
    ("events", "msisdn,time,kind,operator", "{msisdn},2026-10-01 10:00:00,port_out,cmcc", "operator"),
    ("events", "msisdn,time,kind,operator", "{msisdn},2026-10-01 10:00:00,port_out_query,cu", "only a port_out names an operator"),
])
def test_leaving_records_that_cannot_be_true_are_refused_by_name(tmp_path, data_dir, small_city, dataset, header, row, message):
    ingest_city(small_city, [d for d in INGEST_ORDER if d in ("regions", "products", "tac_catalogue", "cells", "subscribers")])
    msisdn = q(f"SELECT msisdn FROM read_csv('{small_city}/subscribers.csv', all_varchar=true) LIMIT 1")[0][0]
    path = tmp_path / f"{dataset}.csv"
    path.write_text(f"{header}\n{row.format(msisdn=msisdn)}\n", encoding="utf-8")
    batch = ingest_file(dataset=dataset, path=path)
    assert batch.status == "rejected" and message in str(batch.errors) + batch.message, (batch.message, batch.errors)
    assert "operator" in {c.name for c in DATASETS["events"].columns}


@pytest.mark.django_db(transaction=True)
def test_a_churn_window_longer_than_the_data_or_out_of_bounds_is_refused_and_starts_nothing(small_city, run_to_end):
    ingest_city(small_city)
    admin = staff_user(StaffProfile.Role.ADMIN, *Region.objects.all(), username="runner")
    client = APIClient()
    client.force_authenticate(admin)
    end = SMALL_CITY.end_date.isoformat()
    for days, message in ((30, "longer than the data: the usage data start on"), (3, "between 7 and 180"),
                          (400, "between 7 and 180")):
        answer = client.post("/api/v1/snapshot-runs/", {"as_of_date": end, "churn_window_days": days}, format="json")
        assert answer.status_code == 409 and message in answer.json()["detail"], (days, answer.json())
    with pytest.raises(CommandError, match="longer than the data"):
        call_command("run_snapshot", "--date", end, "--churn-window-days", "30", stdout=io.StringIO())
    assert not SnapshotRun.objects.exists()
    # Within the data: the run keeps the window it was asked for, and its model says what it lacked by that window.
    run = run_to_end(start_snapshot_run(as_of=SMALL_CITY.end_date, churn_window_days=7, partition_size=600))
    assert run.status == "succeeded" and run.definitions["churn_window_days"] == 7
    model = ChurnModel.objects.get(run=run)
    assert model.window_days == 7 and f"on or before {SMALL_CITY.end_date - timedelta(days=7)}" in model.note


# --- the model --------------------------------------------------------------------------------------------

@pytest.fixture
def churn_runs(churn_city, run_to_end):
    ingest_city(churn_city, WITHOUT_SIGNALLING)
    import_micro_areas(churn_city / "districts.geojson")
    install_starting_catalogue()
    end = CHURN_CITY.end_date
    runs = [run_to_end(start_snapshot_run(as_of=end - timedelta(days=days), window_days=30, partition_size=25_000), timeout=900)
            for days in (WINDOW, 0)]
    assert [r.status for r in runs] == ["succeeded", "succeeded"], [r.error for r in runs]
    return runs


def planted_ceiling(city, earlier_run, current_run) -> tuple[float, float, int]:
    """The planted hazard's own AUC and top-decile lift on the model's held-out subscribers (active on the earlier
    snapshot's date, held out by id), and how many of them left in the window. The run's own lake files: with a
    real worker the lake is shared with other tests' cities."""
    folder = snapshot_dir(earlier_run.id)
    rows = q(f"""SELECT s.msisdn::VARCHAR, s.status IN ('closed', 'ported_out')
                       AND s.status_date::DATE BETWEEN DATE '{earlier_run.as_of_date + timedelta(days=1)}'
                                                   AND DATE '{earlier_run.as_of_date + timedelta(days=WINDOW)}'
                 FROM read_parquet('{folder}/features/*.parquet') f
                 JOIN {read_sql("subscribers", pinned_paths(current_run.lake_batches)["subscribers"])} s USING (subscriber_id)
                 WHERE f.status = 'active' AND coalesce(f.tenure_months, 0) >= 0 AND f.subscriber_id % 10 < {HELD_OUT}""")
    msisdns, labels = np.array([r[0] for r in rows]), np.array([r[1] for r in rows], dtype=bool)
    churn = planted.from_truth(city / "truth", CHURN_CITY.start_date)
    truth_msisdn = np.array([r[0] for r in q(f"SELECT msisdn::VARCHAR FROM read_parquet('{city}/truth/churn.parquet')")])
    first = (earlier_run.as_of_date - CHURN_CITY.start_date).days + 1
    probability = dict(zip(truth_msisdn, churn.probability_of_deciding(first, first + WINDOW - 1)))
    scores = np.array([probability[m] for m in msisdns])
    return roc_auc_score(labels, scores), top_decile_lift(scores, labels), int(labels.sum())


@pytest.mark.django_db(transaction=True)
def test_the_churn_model_ranks_leavers_near_the_planted_hazard_and_its_deciles_select(churn_runs, churn_city):
    earlier, current = churn_runs
    first_model = ChurnModel.objects.get(run=earlier)
    assert first_model.status == "skipped" and "to learn from" in first_model.note
    assert not ScoreSnapshot.objects.filter(snapshot__run=earlier, code="churn_risk").exists()

    model = ChurnModel.objects.get(run=current)
    assert model.status == "fitted", model.note
    assert model.trained_on.run_id == earlier.id and model.window_days == WINDOW
    ceiling_auc, ceiling_lift, held_out_churners = planted_ceiling(churn_city, earlier, current)
    assert model.held_out_churners == held_out_churners >= 300
    print(f"churn model ({model.learner}): AUC {model.auc:.3f} (other learner {model.other_auc:.3f}), planted hazard "
          f"{ceiling_auc:.3f}; top-decile lift {model.top_decile_lift:.2f}, planted {ceiling_lift:.2f}; "
          f"{held_out_churners} held-out leavers")
    assert model.auc >= 0.75 and model.auc >= ceiling_auc - 0.05
    assert model.top_decile_lift >= 0.8 * ceiling_lift
    assert model.auc >= model.other_auc  # the learner kept is the better one on the held-out rows

    # The deciles: every line active on the date scored, a tenth in each; usable in audiences and rules alike.
    grades = dict(ScoreSnapshot.objects.filter(snapshot__run=current, code="churn_risk").values_list("grade", "subscriber_count"))
    active = q(f"SELECT count(*) FROM read_parquet('{snapshot_dir(current.id)}/features/*.parquet') WHERE status = 'active'")[0][0]
    assert sorted(grades) == list(range(1, 11)) and sum(grades.values()) == active
    assert all(0.06 * active <= count <= 0.14 * active for count in grades.values()), grades
    admin = staff_user(StaffProfile.Role.ADMIN, *Region.objects.all(), username="retention")
    top = preview_audience(expression="churn_risk >= 9", user=admin)
    assert top["count"] == grades[9] + grades[10]
    assert preview_rule(expression="churn_risk >= 9", user=admin)["count"] == top["count"]
    # Each scored subscriber's first reason is one of the model's inputs' features.
    reasons = {r[0] for r in q(f"SELECT DISTINCT churn_reason_1 FROM read_parquet('{snapshot_dir(current.id)}/churn/*.parquet')")}
    assert reasons - {None} <= set(model.fitted["features"]) and len(reasons) > 3

    # The drivers, in the catalogue's words, through the API: for the analyst, not for sales.
    client = APIClient()
    client.force_authenticate(admin)
    report = client.get("/api/v1/churn-model/").json()
    assert report["learner"] == model.learner and report["won_by"] >= 0
    drivers = report["drivers"]
    assert drivers and drivers[0]["importance"] >= drivers[-1]["importance"] > 0
    assert {"label", "description", "direction", "by_decile"} <= set(drivers[0])
    assert {"port_out_queries", "days_since_port_out_query"} & {d["feature"] for d in drivers[:5]}
    # Leavers of the window learnt from, by receiving operator, as the truth has them (among lines active then).
    went = dict(q(f"""SELECT CASE t.kind WHEN 'close' THEN 'closed' ELSE t.operator END, count(*)
                      FROM read_parquet('{churn_city}/truth/churn.parquet') t
                      JOIN {read_sql("subscribers", pinned_paths(current.lake_batches)["subscribers"])} s
                        ON s.msisdn::VARCHAR = t.msisdn::VARCHAR
                      JOIN read_parquet('{snapshot_dir(earlier.id)}/features/*.parquet') f USING (subscriber_id)
                      WHERE f.status = 'active' AND t.churn_date > DATE '{earlier.as_of_date}'
                        AND t.churn_date <= DATE '{earlier.as_of_date + timedelta(days=WINDOW)}' GROUP BY ALL"""))
    lost = {row["operator"]: row for row in report["lost_by_operator"]}
    assert {code: row["churners"] for code, row in lost.items()} == went and set(went) == {"closed", "cu", "ct", "cbn"}
    assert all(row["monthly_revenue"] > 0 for row in lost.values())
    assert client.get(f"/api/v1/churn-model/?snapshot={earlier.snapshot.id}").json()["status"] == "skipped"
    assert client.get("/api/v1/churn-model/?snapshot=x").status_code == 400
    assert client.get("/api/v1/churn-model/?snapshot=999999").status_code == 404
    for role in (StaffProfile.Role.SALES, StaffProfile.Role.FIELD):
        client.force_authenticate(staff_user(role, Region.objects.first(), username=f"not_analyst_{role}"))
        assert client.get("/api/v1/churn-model/").status_code == 403
    # A retention campaign on the top deciles: its revenue at stake, and each target's reasons on the export.
    campaign = create_campaign(
        owner=admin, name="高危高价值维系", product=None, purpose=Campaign.Purpose.RETENTION, offer="赠送流量",
        audience="churn_risk >= 9 and value_tier_high", channel=Campaign.Channel.OUTBOUND_CALL,
        start_date=CHURN_CITY.end_date, end_date=CHURN_CITY.end_date, regions=[r.code for r in Region.objects.districts()])
    campaign = freeze_campaign(campaign=campaign, user=admin, seed=1)
    assert campaign.counts["monthly_revenue"] > 0 and 0 < campaign.counts["revenue_share"] < 1
    listed = list(csv.DictReader(io.StringIO(b"".join(stream(plan_export(campaign=campaign, user=admin), "csv")).decode())))
    labels = {f.label: f for f in catalogue()}
    assert listed and {row["churn_risk"] for row in listed} <= {"9", "10"}
    reasons = [reason for row in listed for reason in row["churn_reasons"].split("; ") if reason]
    assert reasons and set(reasons) <= set(labels)
    # Reasons from whom a subscriber calls are for analysts only: a field team's export leaves them out.
    assert {reason for reason in reasons if labels[reason].source in BEHAVIOUR_SOURCES}
    field = staff_user(StaffProfile.Role.FIELD, *Region.objects.districts(), username="retention_field")
    theirs = list(csv.DictReader(io.StringIO(b"".join(stream(plan_export(campaign=campaign, user=field), "csv")).decode())))
    assert not {reason for row in theirs for reason in row["churn_reasons"].split("; ") if reason
                and labels[reason].source in BEHAVIOUR_SOURCES}
    # The analyst's admin page shows the same drivers, by the catalogue's label.
    page = Client()
    page.force_login(admin)
    html = page.get(f"/admin/campaigns/churnmodel/{model.id}/change/").content.decode()
    assert drivers[0]["label"] in html and drivers[0]["feature"] in html and "中国联通 China Unicom" in html
