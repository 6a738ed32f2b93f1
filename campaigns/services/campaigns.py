"""Freezing a campaign: its audience in the current snapshot, the contact policy applied (opted out,
inactive, on the do-not-disturb list, contacted too often lately: taken out and counted by reason), a
random control group drawn with a recorded seed, and for every target the terms of the audience it
matched, written once to the lake as the campaign's target list."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np
import pyarrow as pa
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from pyroaring import BitMap

from microarea.selectors import visible_districts
from tagging.bitmaps import to_bitmap
from tagging.expressions import ExpressionError
from tagging.lake import store
from tagging.lake.sql import empty_relation
from tagging.models import Region, Snapshot, TagDefinition, TagSnapshot, TagVersion
from tagging.services.audiences import (
    AUDIENCE_FUNCTIONS,
    GRADES,
    SnapshotBitmaps,
    audience_bitmap,
    current_snapshot,
    parse_audience,
    revenue_shown,
)
from tagging.stages import stage_sql, write_atomically
from tagging.stages.features import product_feature

from ..models import Campaign, SavedAudience


class CampaignRefused(ValueError):
    """A campaign action refused, naming the field at fault; nothing was changed. `status`: the HTTP answer (403
    for a step the user may not take on this campaign)."""

    def __init__(self, message: str, *, field: str, status: int = 400):
        super().__init__(message)
        self.field, self.status = field, status


def _all_districts_yours(campaign: Campaign, user, step: str) -> None:
    """A campaign shared by several districts is frozen, started or closed only by someone whose districts
    cover all of them: a step taken from one district would decide for the others (a freeze without their
    targets, for good)."""
    others = campaign.regions.exclude(code__in=visible_districts(user)).order_by("code")
    if others.exists():
        names = ", ".join(f"{r.name} {r.code}" for r in others)
        raise CampaignRefused(f"the campaign also runs in {names}, not one of your districts: only someone whose "
                              f"districts cover all of the campaign's may {step} it", field="regions", status=403)


def campaign_districts(campaign: Campaign, user) -> list[str]:
    """The frozen campaign's districts that are the user's: what their exports and results cover."""
    return sorted(set(visible_districts(user)) & set(campaign.counts.get("districts", [])))


def targets_path(campaign: Campaign) -> Path:
    return Path(settings.LAKE_DIR) / "campaigns" / f"campaign-{campaign.id:06d}" / "targets.parquet"


def triggered_path(campaign: Campaign) -> Path:
    """Subscribers event triggers added to the running campaign, kept beside the frozen list."""
    return targets_path(campaign).with_name("triggered.parquet")


def target_list_sql(campaign: Campaign) -> str:
    """The campaign's whole list as exports, outcomes and the evaluation read it: frozen, then triggered."""
    # Both files have the same columns in the same order; read as one list they keep their row-group
    # statistics, so an export's range of ids reads only its slice (union_by_name would read it all).
    files = [str(p) for p in (targets_path(campaign), triggered_path(campaign)) if p.exists()]
    return f"read_parquet({store.files_sql(files)})"


def contacted_sql(campaign: Campaign) -> str:
    """A condition on the list's "group": whom field teams are given to contact, the targets and a random
    control group alike, never a holdout."""
    return "true" if campaign.control_kind == Campaign.ControlKind.RANDOM else "\"group\" = 'target'"


def residents_sql(campaign: Campaign, area) -> tuple[str, dict]:
    """A condition on t.subscriber_id, with its parameters: living in the micro-area in the frozen snapshot."""
    return (f"t.subscriber_id IN (SELECT subscriber_id FROM {stage_sql(campaign.snapshot.run_id, 'location')} "
            f"WHERE home_h3 IN (SELECT unnest($hexes::UBIGINT[])))", {"hexes": area.hex_array().tolist()})


def contact_list_keys() -> str:
    """Every (campaign, subscriber) field teams were given to contact, as a relation of 'id:subscriber_id'
    keys: what contact outcomes are checked against at ingest."""
    parts = [f"SELECT '{c.id}:' || subscriber_id AS key FROM {target_list_sql(c)} WHERE {contacted_sql(c)}"
             for c in Campaign.objects.exclude(status=Campaign.Status.DRAFT) if targets_path(c).exists()]
    return " UNION ALL ".join(parts) or f"SELECT key FROM {empty_relation(key='VARCHAR')}"


EXCLUSION_LABELS = {  # the reasons of excluded_now(), in its order, as campaign managers read them
    "opted_out": _("Opted out of marketing"),
    "not_active": _("Account not active"),
    "holds_product": _("Already holds the product"),
    "do_not_disturb": _("Do-not-disturb list"),
    "contact_limit": _("Contacted too often in 30 days"),
}


def _do_not_disturb() -> BitMap:
    """The do-not-disturb list now: the current version of the imported list tagged CONTACT_DND_TAG."""
    dnd = TagVersion.objects.filter(tag__code=settings.CONTACT_DND_TAG, tag__kind=TagDefinition.Kind.IMPORTED,
                                    number=F("tag__version")).values_list("members", flat=True).first()
    return BitMap.deserialize(bytes(dnd)) if dnd else BitMap()


def _contacted_often() -> BitMap:
    """Subscribers contacted CONTACT_MAX_PER_30_DAYS times or more in the last 30 days, across campaigns."""
    contacts = store.current_sql("contact_results")
    if not contacts:
        return BitMap()
    con = store.reader()
    try:
        often = con.execute(
            f"SELECT subscriber_id FROM {contacts} WHERE contacted_at >= $since GROUP BY subscriber_id "
            f"HAVING count(*) >= $limit", {"since": timezone.now() - timedelta(days=30),
                                           "limit": settings.CONTACT_MAX_PER_30_DAYS}).fetchnumpy()["subscriber_id"]
    finally:
        con.close()
    return to_bitmap(np.asarray(often))


def contact_barred() -> BitMap:
    """Who no list may contact now whatever their record says: the do-not-disturb list and those contacted too
    often lately. (Opt-outs and inactive accounts are read with the list, from the subscriber file.)"""
    return _do_not_disturb() | _contacted_often()


def excluded_now(snapshot: Snapshot, product_code: str | None) -> dict[str, BitMap]:
    """Who may not be targeted, by reason, in the order a subscriber is counted under: opted out of
    marketing, not active (in the snapshot), holding the campaign's product already (in the snapshot: there
    is nothing to sell them; a retention campaign sells nothing), on the do-not-disturb list (now), contacted
    CONTACT_MAX_PER_30_DAYS times or more in the last 30 days across campaigns (now)."""
    holds = product_feature(product_code) if product_code else "false"
    con = store.reader()
    try:
        rows = con.execute(
            f"SELECT subscriber_id, marketing_opt_out, status <> 'active' AS inactive, coalesce({holds}, false) AS holds FROM "
            f"{stage_sql(snapshot.run_id, 'features')} "
            f"WHERE marketing_opt_out OR status <> 'active' OR {holds}").fetchnumpy()
    finally:
        con.close()
    ids = np.asarray(rows["subscriber_id"])
    return {
        "opted_out": to_bitmap(ids[np.asarray(rows["marketing_opt_out"], dtype=bool)]),
        "not_active": to_bitmap(ids[np.asarray(rows["inactive"], dtype=bool)]),
        "holds_product": to_bitmap(ids[np.asarray(rows["holds"], dtype=bool)]),
        "do_not_disturb": _do_not_disturb(),
        "contact_limit": _contacted_often(),
    }


def check_audience(*, text: str, user, snapshot: Snapshot | None = None) -> None:
    """Refuse an audience the user could not freeze (naming the position), before anything is saved."""
    try:
        bitmaps = SnapshotBitmaps(snapshot or current_snapshot(), user)
        for function, argument in parse_audience(text, bitmaps).functions:
            AUDIENCE_FUNCTIONS[function](bitmaps, argument)  # the place must exist and be the user's
    except ExpressionError as exc:
        raise CampaignRefused(str(exc), field="audience") from None


def _draw_control(campaign: Campaign, *, eligible: BitMap, population: BitMap, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The frozen list's ids (ascending) and which of them are the control group, drawn with the seed.

    A holdout is a share of the eligible audience, taken out of it. A random group is drawn, as many,
    from every eligible subscriber of the campaign's districts, audience or not, and contacted like the
    targets; an audience member drawn into it is contacted as one of the random group."""
    size = round(len(eligible) * float(campaign.control_share))
    rng = np.random.default_rng(seed)
    # Ascending ids from the bitmaps: the draw depends on the seed and the sets alone.
    if campaign.control_kind == Campaign.ControlKind.RANDOM:
        pool = np.fromiter(population, dtype=np.int64, count=len(population))
        drawn = np.sort(rng.choice(pool, min(size, len(pool)), replace=False))
        ids = np.union1d(np.fromiter(eligible, dtype=np.int64, count=len(eligible)), drawn)
        return ids, np.isin(ids, drawn, assume_unique=True)
    ids = np.fromiter(eligible, dtype=np.int64, count=len(eligible))
    control = np.zeros(len(ids), dtype=bool)
    control[rng.choice(len(ids), size, replace=False)] = True
    return ids, control


def freeze_campaign(*, campaign: Campaign, user, seed: int | None = None) -> Campaign:
    """Materialise the target list of a draft campaign from the current snapshot (see the module)."""
    if campaign.status != Campaign.Status.DRAFT:
        raise CampaignRefused(f"the campaign is {campaign.status}; only a draft can be frozen", field="status")
    _all_districts_yours(campaign, user, "freeze")
    snapshot = Snapshot.objects.current()
    if snapshot is None:
        raise CampaignRefused("there is no published snapshot yet: a campaign is frozen from one", field="snapshot")
    try:
        bitmaps = SnapshotBitmaps(snapshot, user)
        expression = parse_audience(campaign.audience, bitmaps)
        districts = sorted(set(campaign.regions.values_list("code", flat=True)) & set(bitmaps.districts))
        if not districts:
            raise CampaignRefused("none of the campaign's districts is one of yours", field="regions")
        scope = BitMap.union(BitMap(), *(bitmaps.region(code) for code in districts))
        audience = audience_bitmap(expression, bitmaps) & scope
        # The terms a target may have matched: its tags and places (a "not" term matches by being absent).
        terms = [(code, bitmaps.tag(code)) for code in sorted(expression.references & bitmaps.tag_codes)]
        terms += [(f'{function}("{argument}")', AUDIENCE_FUNCTIONS[function](bitmaps, argument))
                  for function, argument in expression.functions]
        terms += [(f"{code}={grade}", bitmaps.score(code, grade))
                  for code in sorted(expression.references & bitmaps.score_codes) for grade in GRADES]
    except ExpressionError as exc:
        raise CampaignRefused(str(exc), field="audience") from None
    eligible, excluded, barred = BitMap(audience), {}, BitMap()
    for reason, members in excluded_now(snapshot, campaign.product.code if campaign.product else None).items():
        excluded[reason] = eligible.intersection_cardinality(members)
        eligible -= members
        barred |= members
    if not eligible:
        # A list with nobody on it would be frozen for good; say why instead.
        left_out = ", ".join(f"{EXCLUSION_LABELS[reason]} {n}" for reason, n in excluded.items() if n)
        raise CampaignRefused(f"nobody to target: the audience has {len(audience)} subscribers in the campaign's districts"
                              + (f", all left out ({left_out})" if left_out else ""), field="audience")
    seed = secrets.randbits(62) if seed is None else seed
    ids, control = _draw_control(campaign, eligible=eligible, population=scope - barred, seed=seed)
    listed = to_bitmap(ids)
    matched = {f"m{i}": np.isin(ids, np.fromiter(bitmap & listed, dtype=np.int64), assume_unique=True)
               for i, (_, bitmap) in enumerate(terms)}
    table = pa.table({"subscriber_id": ids, "control": control, **matched})
    reasons = ", ".join(f"CASE WHEN t.m{i} THEN '{name.replace(chr(39), chr(39) * 2)}' END" for i, (name, _) in enumerate(terms))
    drawn = targets_path(campaign).with_name(f"drawn-{seed}.parquet")
    con = store.connect()
    try:
        con.register("frozen", table)
        write_atomically(con, f"""
            SELECT t.subscriber_id, CASE WHEN t.control THEN 'control' ELSE 'target' END AS "group", f.region_code,
                   list_filter([{reasons}]::VARCHAR[], lambda r: r IS NOT NULL) AS reasons
            FROM frozen t JOIN {stage_sql(snapshot.run_id, 'features')} f USING (subscriber_id)
            ORDER BY t.subscriber_id""", drawn)
    finally:
        con.close()
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status != Campaign.Status.DRAFT:
            drawn.unlink(missing_ok=True)
            raise CampaignRefused("the campaign was frozen meanwhile", field="status")
        # The list becomes the campaign's only with the row that records its seed: two freezes at once
        # cannot leave one's list under the other's seed.
        os.replace(drawn, targets_path(campaign))
        locked.snapshot, locked.seed, locked.status = snapshot, seed, Campaign.Status.FROZEN
        locked.frozen_at, locked.frozen_by = timezone.now(), user
        locked.tag_versions = dict(TagSnapshot.objects.filter(snapshot=snapshot, tag__code__in=expression.references)
                                   .values_list("tag__code", "version__number"))
        locked.counts = {"audience": len(audience), "excluded": excluded, "eligible": len(eligible),
                         "targets": int((~control).sum()), "control": int(control.sum()),
                         "control_kind": campaign.control_kind, "districts": districts,
                         # The revenue at stake: the targets' monthly revenue and its share of the districts'.
                         **revenue_shown(bitmaps.revenue(to_bitmap(ids[~control])), bitmaps.revenue(scope),
                                         int((~control).sum()), rounded=False)}
        locked.save(update_fields=["snapshot", "seed", "status", "frozen_at", "frozen_by", "tag_versions", "counts"])
    return locked


def _own_districts(user, codes: list[str]):
    """The districts named, every one of them the user's; refused naming the others."""
    if not codes:
        raise CampaignRefused("at least one district", field="regions")
    districts = Region.objects.visible_to(user).districts().filter(code__in=codes)
    if others := sorted(set(codes) - set(districts.values_list("code", flat=True))):
        raise CampaignRefused(f"not your districts: {', '.join(others)}", field="regions")
    return districts


def _yuan(value, field: str) -> Decimal | None:
    """A non-negative amount of yuan, or None (the default applies); refused naming the field otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise CampaignRefused(f"{value!r} is not an amount of yuan", field=field) from None
    if not amount.is_finite() or amount < 0:
        raise CampaignRefused(f"{value} is not an amount of yuan of 0 or more", field=field)
    if amount >= Decimal(10) ** 8:
        raise CampaignRefused(f"{value} yuan is more than any contact costs or conversion is worth", field=field)
    return amount.quantize(Decimal("0.01"))


def check_purpose(purpose: str, product, control_kind: str) -> None:
    if purpose not in Campaign.Purpose.values:
        raise CampaignRefused(f"{purpose!r} is not a purpose: {' or '.join(Campaign.Purpose.values)}", field="purpose")
    if purpose == Campaign.Purpose.RETENTION:
        if product is not None:
            raise CampaignRefused("a retention campaign sells no product: leave the product empty and say what it "
                                  "offers in `offer`", field="product")
        if control_kind != Campaign.ControlKind.HOLDOUT:
            raise CampaignRefused("a retention campaign is measured by churn against a holdout that is offered "
                                  "nothing; a random group contacted like the targets would be offered it too",
                                  field="control_kind")
    elif product is None:
        raise CampaignRefused("a sale campaign names the product it sells", field="product")


def create_campaign(*, owner, name: str, product, audience: str, channel: str, start_date, end_date, regions: list[str],
                    control_share: float = 0.1, control_kind: str = Campaign.ControlKind.HOLDOUT,
                    saved_audience: SavedAudience | None = None, purpose: str = Campaign.Purpose.SALE, offer: str = "",
                    cost_per_contact=None, value_per_conversion=None) -> Campaign:
    """A draft campaign in the owner's districts, its audience (typed, or taken from a saved audience of the owner's
    regions when none is typed) checked first, naming the position. The pages and the API both create through it.
    A retention campaign sells no product and is measured against a holdout; costs and values are yuan of 0 or more
    (empty: the defaults in settings)."""
    check_purpose(purpose, product, control_kind)
    cost, value = _yuan(cost_per_contact, "cost_per_contact"), _yuan(value_per_conversion, "value_per_conversion")
    if saved_audience is not None and not SavedAudience.objects.visible_to(owner).filter(pk=saved_audience.pk).exists():
        raise CampaignRefused(f"no saved audience {saved_audience.pk} in your regions", field="saved_audience")
    audience = (audience or "").strip() or (saved_audience.expression if saved_audience else "")
    if not audience:
        raise CampaignRefused("Write an audience or pick a saved one", field="audience")
    if end_date < start_date:
        raise CampaignRefused("the campaign ends before it starts", field="end_date")
    districts = _own_districts(owner, regions)
    check_audience(text=audience, user=owner)
    with transaction.atomic():
        campaign = Campaign.objects.create(owner=owner, name=name, product=product, audience=audience, channel=channel,
                                           start_date=start_date, end_date=end_date, control_share=control_share,
                                           control_kind=control_kind, saved_audience=saved_audience, purpose=purpose,
                                           offer=offer, cost_per_contact=cost, value_per_conversion=value)
        campaign.regions.set(districts)
    return campaign


def save_audience(*, owner, name: str, expression: str, regions: list[str], description: str = "") -> SavedAudience:
    """An audience kept under a name for campaigns of these districts (the owner's) to reuse, checked first."""
    districts = _own_districts(owner, regions)
    try:
        check_audience(text=expression, user=owner)
    except CampaignRefused as exc:  # a saved audience's text is its `expression`
        raise CampaignRefused(str(exc), field="expression") from None
    with transaction.atomic():
        saved = SavedAudience.objects.create(owner=owner, name=name, expression=expression, description=description)
        saved.regions.set(districts)
    return saved


# Which status each step of the lifecycle moves a campaign from, and to.
TRANSITIONS = {"start": ([Campaign.Status.FROZEN], Campaign.Status.RUNNING),
               "close": ([Campaign.Status.FROZEN, Campaign.Status.RUNNING], Campaign.Status.CLOSED)}


def next_steps(campaign: Campaign) -> list[str]:
    """The lifecycle steps the campaign's status allows now: freeze a draft, then those of TRANSITIONS."""
    if campaign.status == Campaign.Status.DRAFT:
        return ["freeze"]
    return [step for step, (sources, _) in TRANSITIONS.items() if campaign.status in sources]


def move_campaign(*, campaign: Campaign, step: str, user) -> Campaign:
    """Start a frozen campaign (field teams contact its list) or close it (no more exports or triggers)."""
    _all_districts_yours(campaign, user, step)
    sources, target = TRANSITIONS[step]
    moved = Campaign.objects.filter(pk=campaign.pk, status__in=sources).update(status=target)
    campaign.refresh_from_db(fields=["status"])
    if not moved:
        allowed = " or ".join(sources)
        raise CampaignRefused(f"the campaign is {campaign.status}; only a campaign {allowed} can {step}",
                              field="status")
    return campaign
