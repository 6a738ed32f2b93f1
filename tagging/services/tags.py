"""Tag definitions: check, save with a kept version, pin for a run, preview a rule on the latest snapshot."""

from __future__ import annotations

import time

import numpy as np
from django.db import transaction
from pyroaring import BitMap

from ..expressions import Expression, ExpressionError, Symbol, Type, evaluation_order, parse
from ..lake import store
from ..models import Product, Region, Snapshot, TagDefinition, TagVersion
from ..privacy import mask_numbers
from ..stages import stage_files
from ..stages.features import FEATURE_SOURCES, feature_symbols, feature_table_sql
from .audiences import AUDIENCE_FUNCTIONS

# Words of the expression language (and Python's) a tag code may not take; nor may the names of audience
# functions (AUDIENCE_FUNCTIONS: holds, and what other apps register).
LANGUAGE_WORDS = {"and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "lambda"}
VERSIONED_FIELDS = ["name", "name_en", "category", "kind", "expression", "enabled", "description"]


class DefinitionRefused(ExpressionError):
    """A definition that cannot be saved, naming the form field at fault (code, expression, enabled)."""

    def __init__(self, message: str, *, field: str = "expression", **position):
        self.field = field
        super().__init__(message, **position)


def tag_symbols(*, extra: set[str] = frozenset()) -> dict[str, Symbol]:
    """Every name a tag rule may use: the feature catalogue and every tag."""
    symbols = feature_symbols()
    for code in set(TagDefinition.objects.values_list("code", flat=True)) | set(extra):
        symbols[code] = Symbol(code, Type.BOOLEAN, "tag")
    return symbols


def _dependencies(symbols: dict[str, Symbol], *, replacing: TagDefinition | None = None) -> dict[str, set[str]]:
    """Which tags each rule uses, for every rule tag (with `replacing` in place of its saved version)."""
    tags = {code for code, symbol in symbols.items() if symbol.kind == "tag"}
    dependencies: dict[str, set[str]] = {code: set() for code in tags}
    for tag in TagDefinition.objects.rules().exclude(expression=""):
        if replacing is not None and tag.pk == replacing.pk:
            continue
        try:
            dependencies[tag.code] = set(parse(tag.expression, symbols).references) & tags
        except ExpressionError:
            continue  # a rule broken by a later catalogue change is reported when it is saved or run
    return dependencies


def check_definition(tag: TagDefinition) -> Expression | None:
    """Refuse what could not be computed: a code taken by a feature, a bad or mistyped rule, a cycle,
    a rule using a disabled tag, or disabling a tag that enabled rules use. Raises ExpressionError."""
    features = feature_symbols()
    if tag.code in features:
        raise DefinitionRefused(f"{tag.code!r} is already the name of a feature; choose another code", field="code",
                                token=tag.code)
    if tag.code in LANGUAGE_WORDS or tag.code in AUDIENCE_FUNCTIONS:
        raise DefinitionRefused(f"{tag.code!r} is a word of the rule language; choose another code", field="code",
                                token=tag.code)
    symbols = tag_symbols(extra={tag.code})
    if tag.pk:
        previous_code = TagDefinition.objects.filter(pk=tag.pk).values_list("code", flat=True).first()
        if previous_code and previous_code != tag.code:
            symbols.pop(previous_code, None)
    dependencies = _dependencies(symbols, replacing=tag)
    users = sorted(code for code, used in dependencies.items() if tag.code in used and code != tag.code)
    enabled_users = set(TagDefinition.objects.enabled().filter(code__in=users).values_list("code", flat=True))
    if not tag.enabled and enabled_users:
        raise DefinitionRefused(f"enabled tags use this tag: {', '.join(sorted(enabled_users))}; change them first",
                                field="enabled", token=tag.code)
    if tag.kind != TagDefinition.Kind.RULE:
        if tag.expression.strip():
            raise DefinitionRefused(f"a {tag.kind} tag has no expression; clear it")
        return None
    if not tag.expression.strip():
        raise DefinitionRefused("a rule needs an expression, e.g. sms_30d >= 300 and sms_package_fee < 20")
    try:
        parsed = parse(tag.expression, symbols)
        dependencies[tag.code] = {name for name in parsed.references if symbols[name].kind == "tag"}
        evaluation_order(dependencies)
    except ExpressionError as exc:
        raise DefinitionRefused(exc.message, line=exc.line, column=exc.column, token=exc.token) from None
    if tag.enabled:
        disabled = sorted(TagDefinition.objects.filter(code__in=dependencies[tag.code], enabled=False)
                          .values_list("code", flat=True))
        if disabled:
            raise DefinitionRefused(f"uses disabled tags: {', '.join(disabled)}", token=disabled[0])
    return parsed


def _change_summary(tag: TagDefinition, previous: TagVersion | None) -> str:
    if previous is None:
        return "created"
    changed = [name for name in VERSIONED_FIELDS if getattr(previous, name) != getattr(tag, name)]
    return ", ".join(f"{name} changed" for name in changed)


@transaction.atomic
def save_tag_definition(*, tag: TagDefinition, author=None, note: str = "", members: BitMap | None = None) -> TagDefinition:
    """Check and save a definition; keep a new version (who, when, what) whenever its content changed.

    `members` replaces an imported list's subscribers; without it the list stays as it was.
    """
    check_definition(tag)
    tag.full_clean(exclude=["version"])
    previous = tag.versions.order_by("-number").first() if tag.pk else None
    change = _change_summary(tag, previous)
    if members is not None:
        change = ", ".join(filter(None, [change, f"{len(members):,} members imported"]))
    elif previous is not None and previous.members is not None:
        members = BitMap.deserialize(bytes(previous.members))
    if tag.kind == TagDefinition.Kind.IMPORTED and members is None:
        raise DefinitionRefused("an imported list needs its members: upload a file of MSISDNs", field="members_file")
    if previous is not None and not change:
        tag.save()
        return tag
    tag.version = (previous.number if previous else 0) + 1
    tag.updated_by = author if author is not None and author.is_authenticated else None
    tag.save()
    TagVersion.objects.create(
        tag=tag, number=tag.version, author=tag.updated_by, change=(f"{change}: {note}" if note else change)[:255],
        members=members.serialize() if members is not None else None,
        member_count=len(members) if members is not None else None,
        **{name: getattr(tag, name) for name in VERSIONED_FIELDS},
    )
    return tag


def pin_tag_definitions() -> list[dict]:
    """The enabled tags a run computes, in dependency order, each with its version and compiled SQL.

    A tag that cannot be compiled now (a feature it used has left the catalogue) stops the run here,
    naming the tag, rather than producing a snapshot without it.
    """
    from .snapshots import StageFailed

    tags = {t.code: t for t in TagDefinition.objects.enabled()}
    symbols = tag_symbols()
    compiled: dict[str, Expression] = {}
    for code, tag in tags.items():
        if tag.kind == TagDefinition.Kind.RULE:
            try:
                compiled[code] = parse(tag.expression, symbols)
            except ExpressionError as exc:
                raise StageFailed(f"tag {code} (v{tag.version}) cannot be computed: {exc}") from None
            missing = sorted(n for n in compiled[code].references if symbols[n].kind == "tag" and n not in tags)
            if missing:
                raise StageFailed(f"tag {code} (v{tag.version}) uses tags that are not enabled: {', '.join(missing)}")
    dependencies = {code: set(compiled[code].references) & set(tags) if code in compiled else set() for code in tags}
    try:
        order = evaluation_order(dependencies)
    except ExpressionError as exc:
        raise StageFailed(str(exc)) from None
    version_ids = {
        (code, number): pk for code, number, pk in
        TagVersion.objects.filter(tag__in=tags.values()).values_list("tag__code", "number", "id")
    }
    level: dict[str, int] = {}
    pinned = []
    for code in order:
        tag = tags[code]
        level[code] = 1 + max((level[d] for d in dependencies[code]), default=0)
        if (code, tag.version) not in version_ids:
            raise StageFailed(f"tag {code} has no kept version {tag.version}; save it again in admin")
        pinned.append({
            "code": code, "kind": tag.kind, "version": tag.version, "version_id": version_ids[(code, tag.version)],
            "level": level[code], "sql": compiled[code].to_sql() if code in compiled else None,
        })
    return pinned


def latest_tag_files(snapshot: Snapshot) -> dict[str, list[str]]:
    """The feature and tag files a published snapshot left, by stage."""
    files = {}
    for stage in [*FEATURE_SOURCES, "tags"]:
        files[stage] = stage_files(snapshot.run_id, stage)
    return files


def preview_rule(*, expression: str, user, snapshot: Snapshot | None = None) -> dict:
    """How many subscribers of the user's regions a rule matches in the latest snapshot, by district."""
    started = time.perf_counter()
    snapshot = snapshot or Snapshot.objects.current()
    if snapshot is None:
        raise ExpressionError("there is no published snapshot yet; the count appears after the first run")
    files = latest_tag_files(snapshot)
    if not files["features"]:
        raise ExpressionError(f"the snapshot of {snapshot.as_of_date} has no feature table; run a new snapshot")
    table = feature_table_sql({stage: paths for stage, paths in files.items() if stage != "tags"})
    computed: set[str] = set()
    if files["tags"]:
        table = f"(SELECT * FROM {table} LEFT JOIN read_parquet({store.files_sql(files['tags'])}) USING (subscriber_id))"
        computed = set(TagDefinition.objects.filter(snapshots__snapshot=snapshot).values_list("code", flat=True))
    symbols = {name: s for name, s in tag_symbols().items() if s.kind != "tag" or name in computed}
    try:
        parsed = parse(expression, symbols)
    except ExpressionError as exc:
        uncomputed = exc.token if exc.token in set(TagDefinition.objects.values_list("code", flat=True)) else None
        if uncomputed:
            raise ExpressionError(f"tag {uncomputed!r} is not in the snapshot of {snapshot.as_of_date} yet; "
                                  "its count appears after the next run", line=exc.line, column=exc.column,
                                  token=uncomputed) from None
        raise
    regions = dict(Region.objects.visible_to(user).districts().values_list("code", "name"))
    con = store.connect()
    try:
        rows = con.execute(
            f"SELECT region_code, count(*) FILTER (WHERE {parsed.to_sql()}), count(*) FROM {table} "
            f"WHERE region_code IN (SELECT unnest($codes::VARCHAR[])) GROUP BY region_code ORDER BY region_code",
            {"codes": list(regions)},
        ).fetchall()
    finally:
        con.close()
    by_region = [{"region": code, "name": regions[code], "count": n, "subscribers": total} for code, n, total in rows]
    return {
        "count": sum(r["count"] for r in by_region),
        "subscribers": sum(r["subscribers"] for r in by_region),
        "snapshot": str(snapshot.as_of_date),
        "by_region": by_region,
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
    }


def install_starting_catalogue(*, author=None) -> int:
    """Add the starting catalogue's tags that are missing and link products to their demand and potential
    tags where neither is set; never overwrite an admin's edits."""
    from ..catalogue import PRODUCT_CLASSES, STARTING_TAGS

    existing = set(TagDefinition.objects.values_list("code", flat=True))
    products = set(Product.objects.values_list("code", flat=True))
    added = 0
    for entry in STARTING_TAGS:
        entry = dict(entry)
        if entry["code"] in existing or not set(entry.pop("requires", ())) <= products:
            continue
        save_tag_definition(tag=TagDefinition(**entry), author=author, note="starting catalogue")
        added += 1
    tags = dict(TagDefinition.objects.values_list("code", "id"))
    for product in Product.objects.filter(code__in=PRODUCT_CLASSES, demand_tag=None, potential_tag=None):
        demand, potential = PRODUCT_CLASSES[product.code]
        product.demand_tag_id, product.potential_tag_id = tags.get(demand), tags.get(potential)
        product.save(update_fields=["demand_tag", "potential_tag"])
    return added


def import_member_list(content: bytes) -> BitMap:
    """The subscribers of an uploaded list (one MSISDN per line, an optional header, UTF-8 or GBK), set-wise.
    Any line that is not a number, or not a subscriber, refuses the whole list, naming the lines."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = content.decode("gbk", errors="replace")
    lines = text.splitlines()
    subscribers = store.current_sql("subscribers")
    if subscribers is None:
        raise DefinitionRefused("no subscribers in the lake yet: ingest the subscribers file first", field="members_file")
    con = store.connect()
    try:
        rows = con.execute(
            f"""
            WITH given AS (
                SELECT line, CASE WHEN regexp_full_match(trim(value), '\\+?861[3-9][0-9]{{9}}') THEN right(trim(value), 11)
                            ELSE trim(value) END AS msisdn, trim(value) AS raw
                FROM (SELECT unnest($lines) AS value, generate_subscripts($lines, 1) AS line)
                WHERE trim(value) <> '' AND NOT (line = 1 AND NOT regexp_matches(value, '[0-9]'))
            )
            SELECT g.line, g.raw, s.subscriber_id,
                   regexp_full_match(g.msisdn, '1[3-9][0-9]{{9}}') AS well_formed
            FROM given g LEFT JOIN (SELECT msisdn, subscriber_id FROM {subscribers}) s USING (msisdn)
            ORDER BY g.line
            """,
            {"lines": lines},
        ).fetchnumpy()
    finally:
        con.close()
    well_formed, ids = rows["well_formed"].astype(bool), rows["subscriber_id"]
    known = ~np.ma.getmaskarray(ids) if np.ma.isMaskedArray(ids) else ~np.isnan(ids.astype(float))
    bad = ~well_formed | ~known
    if not len(rows["line"]):
        raise DefinitionRefused("the file lists no MSISDNs", field="members_file")
    if bad.any():
        shown = [
            f"line {line}: {mask_numbers(raw[:20])!r} " + ("is not an 11-digit mobile number" if not ok else "is not a subscriber")
            for line, raw, ok in zip(rows["line"][bad][:10], rows["raw"][bad][:10], well_formed[bad][:10])
        ]
        raise DefinitionRefused(f"{int(bad.sum()):,} of {len(bad):,} lines refused; " + "; ".join(shown),
                                field="members_file")
    return BitMap(np.asarray(ids, dtype=np.uint32))
