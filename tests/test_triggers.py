"""Touch-point triggers: an accepted events batch adds the subscribers a running campaign's event rules match
to its target stream, with the contact policy and holdout applied, once per subscriber."""

import json
import time
from datetime import date

import duckdb
import pytest
from rest_framework.test import APIClient

from campaigns.models import Campaign, EventTrigger, TriggeredTarget, TriggerPass
from campaigns.services.campaigns import freeze_campaign, move_campaign, targets_path, triggered_path
from microarea.models import MicroArea
from tagging.lake import store
from tagging.models import IngestBatch, Product, Region, StaffProfile
from tagging.services.ingest import ingest_file

from .conftest import SERVICES
from .factories import staff_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def running(published_city):
    chancheng = Region.objects.get(code="440604")
    manager = staff_user(StaffProfile.Role.ADMIN, chancheng, username="tp_cm")
    campaign = Campaign.objects.create(
        name="5G换机触点", product=Product.objects.get(code="5g_plan"), audience="phone_enthusiast", channel="sms",
        start_date=date(2026, 11, 1), end_date=date(2026, 11, 30), owner=manager, control_share="0.1")
    campaign.regions.set([chancheng])
    campaign = move_campaign(campaign=freeze_campaign(campaign=campaign, user=manager, seed=9), step="start", user=manager)
    return {"campaign": campaign, "manager": manager, "region": chancheng}


def ingested(path, timeout: float = 60) -> IngestBatch:
    """Ingest an events file and wait until its trigger pass is done (on the worker, in services mode)."""
    batch = ingest_file(dataset="events", path=path)
    deadline = time.monotonic() + timeout
    while batch.status == IngestBatch.Status.ACCEPTED and not TriggerPass.objects.filter(batch=batch).exists():
        assert time.monotonic() < deadline, f"events batch #{batch.id} was not matched against the triggers in {timeout}s"
        time.sleep(0.2)
    return batch


def people(campaign, where: str, n: int) -> list[str]:
    """MSISDNs of n subscribers matching a condition over the lake's subscribers and the frozen list."""
    return [m for (m,) in duckdb.connect().execute(f"""
        SELECT s.msisdn::VARCHAR FROM {store.current_sql('subscribers')} s
        LEFT JOIN read_parquet('{targets_path(campaign)}') t USING (subscriber_id)
        LEFT JOIN (SELECT DISTINCT subscriber_id, true AS holds FROM {store.current_sql('subscriptions')}
                   WHERE product_code = '5g_plan' AND end_date IS NULL) p USING (subscriber_id)
        WHERE {where} ORDER BY s.subscriber_id LIMIT {n}""").fetchall()]


FREE = "s.region_code = '440604' AND s.status = 'active' AND NOT s.marketing_opt_out AND t.subscriber_id IS NULL AND p.holds IS NULL"


def test_events_add_matching_subscribers_to_the_stream_once_with_the_policy_applied(running, tmp_path):
    campaign = running["campaign"]
    EventTrigger.objects.create(campaign=campaign, kind=EventTrigger.Kind.HANDSET_5G)
    EventTrigger.objects.create(campaign=campaign, kind=EventTrigger.Kind.BACK_ON, min_off_days=3)
    con = duckdb.connect()
    tac_5g = con.execute(f"SELECT tac::VARCHAR FROM {store.current_sql('tac_catalogue')} WHERE network = '5G' LIMIT 1").fetchone()[0]
    tac_4g = con.execute(f"SELECT tac::VARCHAR FROM {store.current_sql('tac_catalogue')} WHERE network = '4G' LIMIT 1").fetchone()[0]
    free = people(campaign, FREE, 6)
    opted_out = people(campaign, "s.region_code = '440604' AND s.marketing_opt_out", 1)
    elsewhere = people(campaign, "s.region_code = '440606' AND s.status = 'active' AND NOT s.marketing_opt_out", 1)
    listed = people(campaign, "t.\"group\" = 'target'", 1)
    rows = [
        *[(m, "2026-11-05T10:00:00+08:00", "imei_change", "", tac_5g + f"{i:07d}") for i, m in enumerate(free[:3])],
        (free[3], "2026-11-05T10:00:00+08:00", "imei_change", "", tac_4g + "0000001"),  # not a 5G handset
        (opted_out[0], "2026-11-05T10:00:00+08:00", "imei_change", "", tac_5g + "0000002"),
        (elsewhere[0], "2026-11-05T10:00:00+08:00", "imei_change", "", tac_5g + "0000003"),
        (listed[0], "2026-11-05T10:00:00+08:00", "imei_change", "", tac_5g + "0000004"),
        # off five days, then on: back after a long power-off; off one day: not
        (free[4], "2026-11-01T22:00:00+08:00", "power_off", "", ""), (free[4], "2026-11-06T08:00:00+08:00", "power_on", "", ""),
        (free[5], "2026-11-05T22:00:00+08:00", "power_off", "", ""), (free[5], "2026-11-06T08:00:00+08:00", "power_on", "", ""),
    ]
    path = tmp_path / "events-1106.csv"
    path.write_text("msisdn,time,kind,cell_key,imei\n" + "".join(",".join(r) + "\n" for r in rows))
    batch = ingested(path)
    assert batch.status == IngestBatch.Status.ACCEPTED, batch.errors
    assert TriggerPass.objects.get(batch=batch).added == 4
    stream = {t.subscriber_id: t for t in TriggeredTarget.objects.filter(campaign=campaign).select_related("trigger")}
    msisdn_of = dict(con.execute(f"SELECT subscriber_id, msisdn::VARCHAR FROM {store.current_sql('subscribers')} "
                                 f"WHERE subscriber_id IN (SELECT unnest($ids::BIGINT[]))", {"ids": list(stream)}).fetchall())
    assert sorted(msisdn_of[i] for i in stream) == sorted(free[:3] + [free[4]])
    assert {t.trigger.kind for t in stream.values() if msisdn_of[t.subscriber_id] == free[4]} == {"back_on"}
    assert all(t.region_code == "440604" and t.batch_id == batch.id for t in stream.values())

    # The same file again changes nothing; a new batch naming them again adds nobody twice.
    assert ingest_file(dataset="events", path=path).status == IngestBatch.Status.UNCHANGED
    again = tmp_path / "events-1107.csv"
    again.write_text("msisdn,time,kind,cell_key,imei\n" + f"{free[0]},2026-11-07T10:00:00+08:00,imei_change,,{tac_5g}0000009\n")
    assert ingested(again).status == IngestBatch.Status.ACCEPTED
    assert TriggeredTarget.objects.filter(campaign=campaign).count() == len(stream)

    # Field teams export the triggered targets with the frozen ones (the held-out ones never).
    field = APIClient()
    field.force_authenticate(staff_user(StaffProfile.Role.FIELD, running["region"], username="tp_field"))
    body = json.loads(b"".join(field.get(f"/api/v1/campaigns/{campaign.id}/targets/?format=json").streaming_content))
    exported = {row[1] for row in body["rows"]}
    triggered_targets = {msisdn_of[t.subscriber_id] for t in stream.values() if t.group == "target"}
    assert triggered_targets and triggered_targets <= exported
    assert len(body["rows"]) == campaign.counts["targets"] + len(triggered_targets)

    # Admin shows the rules, the stream, the passes and the run's propensity models; read-only where made by runs.
    from django.test import Client

    page = Client()
    page.force_login(running["manager"])
    for model in ("eventtrigger", "triggeredtarget", "triggerpass", "propensitymodel"):
        assert page.get(f"/admin/campaigns/{model}/").status_code == 200, model
    assert page.get("/admin/campaigns/triggeredtarget/add/").status_code == 403
    other = Client()
    other.force_login(staff_user(StaffProfile.Role.ADMIN, Region.objects.get(code="440606"), username="tp_sd"))
    assert "0 triggered targets" in other.get("/admin/campaigns/triggeredtarget/").content.decode()


def test_the_holdout_of_a_stream_depends_on_the_seed_and_the_subscriber_alone():
    import numpy as np

    from campaigns.services.triggers import _held_out

    ids = np.arange(1, 200_001)
    held = _held_out(9, ids, 0.1)
    assert 0.095 < held.mean() < 0.105
    assert (_held_out(9, ids[::7], 0.1) == held[::7]).all() and (_held_out(10, ids, 0.1) != held).any()


def test_a_trigger_on_a_campaign_that_is_not_running_adds_nobody(running, tmp_path):
    campaign = running["campaign"]
    EventTrigger.objects.create(campaign=campaign, kind=EventTrigger.Kind.ROAMING_START)
    move_campaign(campaign=campaign, step="close", user=running["manager"])
    someone = people(campaign, FREE, 1)[0]
    path = tmp_path / "roaming.csv"
    path.write_text(f"msisdn,time,kind,cell_key,imei\n{someone},2026-11-05T10:00:00+08:00,roaming_start,,\n")
    assert ingested(path).status == IngestBatch.Status.ACCEPTED
    assert not TriggeredTarget.objects.exists()
    with pytest.raises(Exception):  # an area trigger must name its area
        EventTrigger.objects.create(campaign=campaign, kind=EventTrigger.Kind.ENTERED_AREA)
    assert MicroArea.objects.exists()


def test_campaign_managers_attach_rules_through_the_api_and_bad_rules_are_refused(running):
    campaign = running["campaign"]
    api = APIClient()
    api.force_authenticate(running["manager"])
    url = f"/api/v1/campaigns/{campaign.id}/triggers/"
    created = api.post(url, {"kind": "back_on", "min_off_days": 5}, format="json")
    assert created.status_code == 201 and created.json()["kind"] == "back_on", created.content
    area = MicroArea.objects.get(region=running["region"], kind=MicroArea.Kind.DISTRICT)
    assert api.post(url, {"kind": "entered_area", "micro_area": area.id}, format="json").status_code == 201
    other = MicroArea.objects.exclude(region=running["region"]).first()
    for body, field in [({"kind": "entered_area"}, "micro_area"), ({"kind": "entered_area", "micro_area": other.id}, "micro_area"),
                        ({"kind": "teleported"}, "kind"), ({"kind": "back_on", "min_off_days": -1}, "min_off_days")]:
        refused = api.post(url, body, format="json")
        assert refused.status_code == 400 and field in refused.json(), (body, refused.content)
    sales = APIClient()
    sales.force_authenticate(staff_user(StaffProfile.Role.SALES, running["region"], username="tp_sales"))
    assert sales.post(url, {"kind": "roaming_start"}, format="json").status_code == 403
    listed = sales.get(url)
    assert listed.status_code == 200 and [(r["kind"], r["added"]) for r in listed.json()] == [("back_on", 0), ("entered_area", 0)]
    move_campaign(campaign=campaign, step="close", user=running["manager"])
    closed = api.post(url, {"kind": "roaming_start"}, format="json")
    assert closed.status_code == 400 and "closed" in str(closed.json()).lower()
    assert EventTrigger.objects.filter(campaign=campaign).count() == 2


def test_first_seen_in_a_micro_area_means_no_event_at_its_cells_in_the_month_before(running, tmp_path):
    from microarea.services.coverage import cell_coverage
    from microarea.services.micro_areas import create_micro_area

    campaign, con = running["campaign"], duckdb.connect()
    # A small area: the footprint of one Chancheng cell that signalling saw, and a subscriber seen there lately.
    # (one who could be added: in Chancheng, active, not listed, without the product; so only "lately" bars them)
    cell, regular = con.execute(f"""
        SELECT e.cell_key, s.msisdn::VARCHAR FROM {store.current_sql('events')} e
        JOIN {store.current_sql('subscribers')} s USING (subscriber_id)
        WHERE e.cell_key IS NOT NULL AND s.msisdn::VARCHAR IN (SELECT unnest($free::VARCHAR[]))
        ORDER BY e.time DESC LIMIT 1""", {"free": people(campaign, FREE, 400)}).fetchone()
    area = create_micro_area(name="季华商圈", kind="business", region=running["region"], cells=[cell],
                             coverage_file=cell_coverage())
    EventTrigger.objects.create(campaign=campaign, kind=EventTrigger.Kind.ENTERED_AREA, micro_area=area)
    newcomer = next(m for m in people(campaign, FREE, 50) if m != regular and not con.execute(
        f"SELECT count(*) FROM {store.current_sql('events')} e JOIN {store.current_sql('subscribers')} s USING (subscriber_id) "
        f"WHERE s.msisdn::VARCHAR = $m AND e.cell_key = $c", {"m": m, "c": cell}).fetchone()[0])
    path = tmp_path / "area.csv"
    path.write_text("msisdn,time,kind,cell_key,imei\n"
                    f"{newcomer},2026-11-01T09:00:00+08:00,location_update,{cell},\n"
                    f"{regular},2026-11-01T09:00:00+08:00,location_update,{cell},\n")
    assert ingested(path).status == IngestBatch.Status.ACCEPTED
    added = {t.subscriber_id for t in TriggeredTarget.objects.filter(campaign=campaign, trigger__kind="entered_area")}
    ids = dict(con.execute(f"SELECT msisdn::VARCHAR, subscriber_id FROM {store.current_sql('subscribers')} "
                           f"WHERE msisdn::VARCHAR IN ($a, $b)", {"a": newcomer, "b": regular}).fetchall())
    assert ids[newcomer] in added
    assert ids[regular] not in added  # seen at the cell lately: not "first seen"


@pytest.mark.skipif(not SERVICES, reason="two passes at once need PostgreSQL's row locks: runs in `make test-services`")
def test_two_trigger_passes_at_once_lose_no_target(running, tmp_path, monkeypatch):
    import threading

    from django.db import connection

    from campaigns.services import triggers

    campaign = running["campaign"]
    first, second = people(campaign, FREE, 2)
    batches = []
    for i, msisdn in enumerate((first, second)):  # ingested before the rule exists: they add nobody yet
        path = tmp_path / f"roaming-{i}.csv"
        path.write_text(f"msisdn,time,kind,cell_key,imei\n{msisdn},2026-11-05T10:0{i}:00+08:00,roaming_start,,\n")
        batches.append(ingested(path))
    trigger = EventTrigger.objects.create(campaign=campaign, kind=EventTrigger.Kind.ROAMING_START)
    snapshot = campaign.snapshot
    written, go_on = threading.Event(), threading.Event()
    write = triggers.write_table_atomically

    def slow_write(table, path):
        write(table, path)
        if threading.current_thread().name == "first":  # the first pass has written and not yet committed
            written.set()
            go_on.wait(5)

    monkeypatch.setattr(triggers, "write_table_atomically", slow_write)

    def apply(batch):
        try:
            triggers._apply(trigger, batch, snapshot)
        finally:
            connection.close()

    one = threading.Thread(target=apply, args=(batches[0],), name="first")
    one.start()
    assert written.wait(30)
    two = threading.Thread(target=apply, args=(batches[1],), name="second")
    two.start()
    two.join(2)  # without the campaign's lock it would finish here, writing the list without the first's target
    go_on.set()
    one.join(30), two.join(30)
    listed = {m for (m,) in duckdb.connect().execute(
        f"SELECT s.msisdn::VARCHAR FROM read_parquet('{triggered_path(campaign)}') t "
        f"JOIN {store.current_sql('subscribers')} s USING (subscriber_id)").fetchall()}
    assert {first, second} <= listed
