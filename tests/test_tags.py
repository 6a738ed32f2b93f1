"""The user tag library: catalogue, tag runs, versions, validation, run-time failures, imported lists, segments."""

import duckdb
import numpy as np
import pytest
from pyroaring import BitMap

from tagging.expressions import ExpressionError
from tagging.models import Product, Snapshot, SnapshotRun, Subscriber, TagDefinition, TagSnapshot, TagVersion
from tagging.services.snapshots import start_snapshot_run
from tagging.services.tags import DefinitionRefused, install_starting_catalogue, save_tag_definition

from .conftest import SMALL_CITY, ingest_city
from .factories import staff_user

pytestmark = pytest.mark.django_db(transaction=True)  # a real worker must see what the test committed
AS_OF = SMALL_CITY.end_date
WINDOW = SMALL_CITY.days


@pytest.fixture
def library(small_city):
    ingest_city(small_city)
    install_starting_catalogue()
    return small_city


def run(run_to_end, **kwargs) -> SnapshotRun:
    finished = run_to_end(start_snapshot_run(as_of=kwargs.pop("as_of", AS_OF), window_days=WINDOW,
                                             partition_size=kwargs.pop("partition_size", 500), **kwargs))
    return finished


def members(snapshot: Snapshot, code: str) -> BitMap:
    return BitMap.deserialize(bytes(TagSnapshot.objects.get(snapshot=snapshot, tag__code=code).bitmap))


def test_the_starting_catalogue_covers_operator_practice(library):
    codes = set(TagDefinition.objects.values_list("code", flat=True))
    assert len(codes) >= 30
    assert {
        "consumption_high", "consumption_mid", "consumption_low", "high_value", "comm_active", "comm_silent",
        "comm_churned", "need_voice", "need_data", "need_sms", "night_active", "sms_expert", "frequent_traveller",
        "competitor_caller", "lifecycle_new", "lifecycle_growing", "lifecycle_stable", "lifecycle_declining",
        "lifecycle_at_risk", "lifecycle_churned", "sms_pack_upsell", "data_heavy_no_pack", "silent_wakeup",
    } <= codes
    for tag in TagDefinition.objects.all():
        assert len(tag.description) >= 40 and tag.name and tag.name_en, tag.code  # each says why
        assert tag.versions.get().change == "created: starting catalogue"
    assert TagDefinition.objects.get(code="sms_pack_upsell").expression == "sms_30d >= 300 and sms_package_fee < 20"
    # Installing again adds nothing and keeps an admin's edit.
    edited = TagDefinition.objects.get(code="sms_expert")
    edited.expression = "sms_30d >= 120"
    save_tag_definition(tag=edited)
    assert install_starting_catalogue() == 0
    assert TagDefinition.objects.get(code="sms_expert").expression == "sms_30d >= 120"


def test_a_run_computes_every_tag_as_its_rule_says(library, run_to_end):
    finished = run(run_to_end)
    assert finished.status == SnapshotRun.Status.SUCCEEDED, finished.error
    snapshot = Snapshot.objects.current()
    enabled = set(TagDefinition.objects.enabled().values_list("code", flat=True))
    stored = TagSnapshot.objects.filter(snapshot=snapshot)
    assert set(stored.values_list("tag__code", flat=True)) == enabled
    for row in stored:
        assert row.subscriber_count == len(BitMap.deserialize(bytes(row.bitmap)))
        assert row.version.number == row.tag.version

    # Independently of the rule compiler: SMS experts from the raw usage file (150+ SMS per 30 days) ...
    ids = dict(Subscriber.objects.values_list("msisdn", "id"))
    raw = duckdb.execute(
        f"SELECT msisdn::VARCHAR, sum(sms) * 30.0 / {WINDOW} AS per_30 FROM read_csv('{library}/usage_daily.csv', "
        "types={'msisdn': 'VARCHAR'}) GROUP BY msisdn"
    ).fetchall()
    assert members(snapshot, "sms_expert") == BitMap(ids[m] for m, per_30 in raw if per_30 >= 150)
    # ... the silent ones: no usage row at all in the window.
    assert members(snapshot, "comm_churned") == BitMap(ids.values()) - BitMap(ids[m] for m, _ in raw)
    # Tags using tags follow them.
    assert members(snapshot, "high_value_at_risk") == members(snapshot, "high_value") & members(snapshot, "lifecycle_at_risk")
    stable = members(snapshot, "lifecycle_stable")
    for other in ["lifecycle_growing", "lifecycle_declining", "lifecycle_at_risk", "lifecycle_churned"]:
        assert not stable & members(snapshot, other)
    assert stable and stable <= members(snapshot, "comm_active")
    # Districts partition the subscribers.
    districts = [BitMap.deserialize(bytes(b)) for b in snapshot.regions.values_list("bitmap", flat=True)]
    assert sum(len(d) for d in districts) == len(BitMap.union(*districts)) == SMALL_CITY.subscribers


def test_versions_are_kept_and_each_tag_snapshot_records_its_version(library, run_to_end):
    analyst = staff_user("admin", username="analyst")
    run(run_to_end)
    first = Snapshot.objects.current()
    tag = TagDefinition.objects.get(code="sms_expert")
    tag.expression = "sms_30d >= 60"
    save_tag_definition(tag=tag, author=analyst)
    tag.description += " Lowered to 60 for the spring campaign."
    save_tag_definition(tag=tag, author=analyst)
    save_tag_definition(tag=tag, author=analyst)  # nothing changed: no new version
    versions = list(tag.versions.order_by("number").values_list("number", "author__username", "change", "expression"))
    assert versions == [
        (1, None, "created: starting catalogue", "sms_30d >= 150"),
        (2, "analyst", "expression changed", "sms_30d >= 60"),
        (3, "analyst", "description changed", "sms_30d >= 60"),
    ]
    run(run_to_end)
    second = Snapshot.objects.current()
    before, after = TagSnapshot.objects.get(snapshot=first, tag=tag), TagSnapshot.objects.get(snapshot=second, tag=tag)
    assert (before.version.number, after.version.number) == (1, 3)
    assert after.subscriber_count > before.subscriber_count


def _definition(**fields) -> TagDefinition:
    defaults = {"name": "测试", "name_en": "Test", "category": "behaviour", "kind": "rule", "enabled": True}
    return TagDefinition(**{**defaults, **fields})


@pytest.mark.parametrize(
    "fields, field, needle",
    [
        ({"code": "bad_feature", "expression": "sms_per_month >= 300"}, "expression", "unknown name 'sms_per_month'"),
        ({"code": "bad_syntax", "expression": "sms_30d >= 300 and"}, "expression", "syntax error"),
        ({"code": "bad_type", "expression": 'sms_30d >= "many"'}, "expression", "cannot compare a number with a text"),
        ({"code": "not_boolean", "expression": "sms_30d + 1"}, "expression", "must be true or false"),
        ({"code": "sms_30d", "expression": "sms_total > 1"}, "code", "already the name of a feature"),
        ({"code": "lambda", "expression": "sms_total > 1"}, "code", "word of the rule language"),
        ({"code": "empty_rule", "expression": "  "}, "expression", "needs an expression"),
        ({"code": "segment_x", "kind": "segment", "expression": "sms_30d > 1"}, "expression", "has no expression"),
        ({"code": "self_loop", "expression": "self_loop and sms_30d > 1"}, "expression", "cycle"),
        ({"code": "sms_expert", "expression": "sms_30d >= 150 and sms_pack_upsell"}, "expression", "cycle"),
        ({"code": "evil", "expression": "__import__('os').system('true')"}, "expression", "not allowed"),
    ],
)
def test_bad_definitions_are_refused_with_the_position_and_change_nothing(library, fields, field, needle):
    if fields["code"] == "sms_expert":  # sms_pack_upsell -> sms_expert -> sms_pack_upsell
        upsell = TagDefinition.objects.get(code="sms_pack_upsell")
        upsell.expression = "sms_expert and sms_package_fee < 20"
        save_tag_definition(tag=upsell)
        tag = TagDefinition.objects.get(code="sms_expert")
        tag.expression = fields["expression"]
    else:
        tag = _definition(**fields)
    before = (TagDefinition.objects.count(), TagVersion.objects.count(),
              list(TagDefinition.objects.values_list("code", "expression", "version")))
    with pytest.raises(DefinitionRefused) as refused:
        save_tag_definition(tag=tag)
    assert needle in str(refused.value) and refused.value.field == field
    if field == "expression" and "syntax" not in needle and "needs" not in needle and "has no" not in needle:
        assert refused.value.column >= 1 and refused.value.token
    assert before == (TagDefinition.objects.count(), TagVersion.objects.count(),
                      list(TagDefinition.objects.values_list("code", "expression", "version")))


def test_tags_in_use_cannot_be_disabled_and_rules_cannot_use_disabled_tags(library):
    used = TagDefinition.objects.get(code="high_value")
    used.enabled = False
    with pytest.raises(DefinitionRefused, match="high_value_at_risk") as refused:
        save_tag_definition(tag=used)
    assert refused.value.field == "enabled"
    quiet = TagDefinition.objects.get(code="night_active")
    quiet.enabled = False
    save_tag_definition(tag=quiet)
    with pytest.raises(DefinitionRefused, match="uses disabled tags: night_active"):
        save_tag_definition(tag=_definition(code="night_sms", expression="night_active and sms_30d > 100"))


def test_arithmetic_that_overflowed_integers_mid_run_now_runs(library, run_to_end):
    # It failed every run with "Overflow in multiplication of INT64"; rules compute arithmetic in DOUBLE now.
    save_tag_definition(tag=_definition(code="overflowing", expression="voice_calls_total * 1000000000000000 * 1000000000000000 > 0"))
    done = run(run_to_end)
    assert done.status == SnapshotRun.Status.SUCCEEDED, done.error
    assert TagSnapshot.objects.get(snapshot__run=done, tag__code="overflowing").subscriber_count > 0


def test_a_rule_failing_at_run_time_fails_the_run_naming_the_tag_and_the_previous_snapshot_stays(library, run_to_end):
    run(run_to_end)
    good = Snapshot.objects.current()
    Product.objects.create(code="promo_x", name="新品", category="content")  # added in admin, not in the lake
    save_tag_definition(tag=_definition(code="promo_x_holder", expression="has_promo_x"))
    failed = run(run_to_end)
    assert failed.status == SnapshotRun.Status.FAILED
    assert "tag promo_x_holder (v1) failed on the data" in failed.error and "has_promo_x" in failed.error
    assert failed.partitions.filter(stage="tags", attempts__gt=1).count() == 0  # not retried: it cannot succeed
    assert Snapshot.objects.current() == good


def test_an_imported_list_becomes_a_tag_and_a_bad_list_is_refused(library, run_to_end):
    from tagging.services.tags import import_member_list

    chosen = list(Subscriber.objects.order_by("id").values_list("msisdn", "id")[:5])
    listing = "手机号码\n" + "\n".join(f"+86{m}" if i % 2 else m for i, (m, _) in enumerate(chosen)) + "\n"
    tag = _definition(code="vip_list", kind="imported", category="value", expression="")
    with pytest.raises(DefinitionRefused, match="needs its members"):
        save_tag_definition(tag=tag)
    with pytest.raises(ExpressionError, match=r"2 of 7 lines refused; line 7: '\*\*\*\*\*\*\*' is not an 11-digit mobile "
                                              r"number; line 8: '199\*\*\*\*9999' is not a subscriber"):
        import_member_list((listing + "1380013\n19999999999\n").encode())
    assert not TagDefinition.objects.filter(code="vip_list").exists()
    save_tag_definition(tag=tag, members=import_member_list(listing.encode("gbk")))
    assert tag.versions.get().member_count == 5
    run(run_to_end)
    assert members(Snapshot.objects.current(), "vip_list") == BitMap(i for _, i in chosen)


def test_segments_are_described_and_keep_their_codes_from_run_to_run(library, run_to_end, small_city):
    run(run_to_end)
    first = Snapshot.objects.current()
    segments = TagDefinition.objects.filter(kind="segment")
    assert segments.count() == 8
    assert all(s.name.startswith("分群:") and s.name_en.startswith("Segment: ") for s in segments)
    # The planted SMS-heavy subscribers fall mostly into one segment, and it is described as SMS-heavy.
    truth = duckdb.execute(f"SELECT msisdn FROM read_parquet('{small_city}/truth/subscribers.parquet') "
                           "WHERE profile = 'sms_heavy'").fetchall()
    ids = dict(Subscriber.objects.values_list("msisdn", "id"))
    sms_heavy = BitMap(ids[m] for (m,) in truth)
    best = max(segments, key=lambda s: len(members(first, s.code) & sms_heavy))
    assert len(members(first, best.code) & sms_heavy) >= 0.6 * len(sms_heavy)
    assert "SMS-heavy" in best.name_en

    run(run_to_end)
    second = Snapshot.objects.current()
    for segment in segments:
        assert members(second, segment.code) == members(first, segment.code), segment.code
    assert second.run.segment_model.matched_to == first.run.segment_model


def test_segment_codes_follow_the_centroids_not_their_order():
    from tagging import segments

    rng = np.random.default_rng(3)
    centres = np.array([[5, 0, 0], [0, 5, 0], [0, 0, 5], [5, 5, 5]], dtype=float)
    values = np.concatenate([c + rng.normal(size=(300, 3)) for c in centres])
    features = ["sms_30d", "data_mb_30d", "night_call_share"]
    first = segments.fit(values, features, 4, seed=1)
    again = segments.fit(values[rng.permutation(len(values))] + 0.05, features, 4, seed=99, previous=first)
    for code in first.codes:
        a = first.centroids[first.codes.index(code)] * first.scale + first.mean
        b = again.centroids[again.codes.index(code)] * again.scale + again.mean
        assert np.allclose(a, b, atol=0.2), code
    grown = segments.fit(values, features, 5, seed=1, previous=first)
    assert set(first.codes) < set(grown.codes) and "segment_5" in grown.codes
    zh, en = segments.describe(np.array([2.0, -1.0, 0.1]), features)
    assert (zh, en) == ("短信多·流量少", "SMS-heavy, low data")


def test_segments_keep_their_subscribers_from_one_sample_of_the_same_behaviour_to_the_next():
    """Behaviour data have no sharp clusters: fresh fits of two samples of the same population, matched by
    centroid, kept fewer than half of the subscribers in their segment. A model carried over keeps almost
    all of them; data that do take a new shape still get a fresh fit."""
    from tagging import segments

    features = [name for name, _, _, _ in segments.BEHAVIOUR]
    rng = np.random.default_rng(11)
    mixing = np.eye(8) + 0.05  # correlated, unclustered behaviour

    def population(n):
        return rng.normal(size=(n, 8)) @ mixing

    def segment_of(fit, values):
        return np.array(fit.codes)[segments.nearest((values - fit.mean) / fit.scale, fit.centroids)]

    first = segments.fit(population(30_000), features, 8, seed=7)
    second = segments.fit(population(30_000), features, 8, seed=7, previous=first)
    everyone = population(20_000)
    assert second.carried and (segment_of(first, everyone) == segment_of(second, everyone)).mean() >= 0.95

    centres = rng.choice([-6.0, 6.0], size=(8, 8))
    clustered = np.concatenate([c + rng.normal(size=(2_000, 8)) for c in centres])
    reshaped = segments.fit(clustered, features, 8, seed=7, previous=second)
    assert not reshaped.carried and set(reshaped.codes) == set(second.codes)
    recovered = segment_of(reshaped, centres)
    assert len(set(recovered)) == 8  # one segment per planted cluster
