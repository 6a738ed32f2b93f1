"""What each raw dataset must look like: columns, types, ranges, keys and references. Pure, no Django.

Every check compiles to DuckDB SQL over the file's text values, so validation is one set-wise pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Kind(str, Enum):
    MASTER = "master"  # a later batch updates rows with the same key (subscribers, cells, catalogues)
    FACT = "fact"  # rows are events or days; a key seen in an earlier batch is a duplicate


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # msisdn | phone (any network's number) | int | decimal | date | timestamp | text | bool | enum | digits
    required: bool = True
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    length: int | None = None  # exact length for digits, maximum length for text


@dataclass(frozen=True)
class Reference:
    column: str  # the column an error names
    target: str  # region | product | subscriber | cell | app | campaign | campaign_contact
    message: str
    # The value looked up when it is not the column itself: a compound key over the typed row, where an
    # MSISDN is the subscriber_id the lake stores.
    sql: str | None = None
    # The file's own rows are valid targets too (a region file may bring a parent and its children together).
    includes_own_rows: bool = False

    @property
    def value_sql(self) -> str:
        return self.sql or '"' + self.column.replace('"', '""') + '"'


@dataclass(frozen=True)
class RowCheck:
    column: str
    sql: str  # true when the row is wrong, over typed columns
    reason: str


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: Kind
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    references: tuple[Reference, ...] = ()
    checks: tuple[RowCheck, ...] = ()
    period: str | None = None  # the column that dates a row, so runs read only batches in their window
    headerless_columns: tuple[str, ...] = ()  # published without a header row (OpenCelliD)
    # The dataset that gives subscribers their dense ids (and pseudonyms); every other dataset naming an MSISDN is
    # stored by the id it was given.
    assigns_subscriber_ids: bool = False
    # Columns the lake adds to every row: name -> SQL over the typed row `s` (the cell key of a cell's parts).
    derived: tuple[tuple[str, str], ...] = ()
    # The database table that mirrors the dataset for the web pages and admin (app_label.Model), if any: the
    # mirror's writer is registered under this name (tagging/lake/mirror.py).
    mirror: str | None = None
    # (caller, callee): the dataset records communication between two numbers of any network. The lake keeps one
    # row per end that is the operator's subscriber, as a switch writes an originating and a terminating record:
    # the subscriber's id, the direction, and the other end as a keyed pseudonym (and its subscriber id when it is
    # one): a number outside the operator is never written in clear (tagging/lake/parties.py).
    parties: tuple[str, str] | None = None
    description: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def keyed_by_subscriber(self) -> bool:
        """Facts about a subscriber are stored by dense subscriber id, sorted, never by MSISDN."""
        return ("msisdn" in self.column_names and not self.assigns_subscriber_ids) or self.parties is not None

    @property
    def lake_key(self) -> tuple[str, ...]:
        """The key as the lake stores it: by subscriber id (and, for communication, by direction and peer)."""
        if self.parties:
            others = tuple(k for k in self.key if k not in self.parties)
            return ("subscriber_id", "direction", "peer", *others)
        return tuple("subscriber_id" if k == "msisdn" and self.keyed_by_subscriber else k for k in self.key)


def _count(name: str, maximum: float = 1e6) -> Column:
    return Column(name, "int", minimum=0, maximum=maximum)


def _amount(name: str, maximum: float = 1e6) -> Column:
    return Column(name, "decimal", minimum=0, maximum=maximum)


MSISDN = Column("msisdn", "msisdn")
# The DPI signature library's categories; operator_* are the operators' own apps (a competitor's app says
# something about where the subscriber's other line is).
APP_CATEGORIES = ("video", "short_video", "game", "shopping", "social", "news", "finance", "travel", "navigation", "music",
                  "reading", "education", "operator_cmcc", "operator_cu", "operator_ct", "other")
SUBSCRIBER_STATUSES = ("active", "suspended", "closed", "ported_out")
# Signalling events, and two from the business systems: a subscriber asking whether they may port their number out
# (查询携转资格, by SMS to the operator) and the port itself.
EVENT_KINDS = ("power_on", "power_off", "imei_change", "location_update", "roaming_start", "port_out_query", "port_out")
RECEIVING_OPERATORS = ("cu", "ct", "cbn")  # China Unicom, China Telecom, China Broadnet
SUBSCRIBER_REF = Reference("msisdn", "subscriber", "unknown subscriber: ingest it in subscribers first")
CELL_REF = Reference("cell_key", "cell", "unknown cell: ingest it in cells first")
EARLIEST_DATE = "DATE '1990-01-01'"

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in [
        Dataset(
            "regions",
            Kind.MASTER,
            (
                Column("code", "digits"),
                Column("name", "text", length=64),
                Column("name_en", "text", required=False, length=64),
                Column("level", "enum", choices=("province", "city", "district")),
                Column("parent_code", "digits", required=False),
            ),
            key=("code",),
            references=(Reference("parent_code", "region", "unknown parent region", includes_own_rows=True),),
            mirror="tagging.Region",
            description="Administrative regions: province > city > district.",
        ),
        Dataset(
            "products",
            Kind.MASTER,
            (
                Column("code", "text", length=32),
                Column("name", "text", length=64),
                Column("name_en", "text", required=False, length=64),
                Column("category", "text", length=32),
                _amount("monthly_fee_yuan", 100_000),
            ),
            key=("code",),
            checks=(RowCheck("code", "NOT regexp_full_match(code, '[a-z0-9_\\-]+')", "product code must be lower-case letters, digits, _ or -"),),
            mirror="tagging.Product",
            description="The operator's product catalogue.",
        ),
        Dataset(
            "subscribers",
            Kind.MASTER,
            (
                MSISDN,
                Column("brand", "enum", choices=("全球通", "动感地带", "神州行")),
                Column("plan", "text", length=64),
                Column("join_date", "date"),
                Column("birth_year", "int", required=False, minimum=1900, maximum=2030),
                Column("gender", "enum", required=False, choices=("M", "F", "U")),
                Column("region_code", "digits"),
                Column("status", "enum", choices=SUBSCRIBER_STATUSES),
                Column("marketing_opt_out", "bool"),
                # When the status took effect (a line closed or ported out on that day), so that a snapshot of an
                # earlier date sees the subscriber as they were then.
                Column("status_date", "date", required=False),
                Column("commitment_end", "date", required=False),  # the end of a plan's commitment (合约到期日)
            ),
            key=("msisdn",),
            references=(Reference("region_code", "region", "unknown region code"),),
            checks=(RowCheck("join_date", f"join_date < {EARLIEST_DATE} OR join_date > current_date", "join date out of range"),
                    RowCheck("status_date", "status_date < join_date", "status date before the join date"),
                    RowCheck("status_date", "status_date > current_date", "status date in the future"),
                    RowCheck("status_date", "status = 'ported_out' AND status_date IS NULL",
                             "a ported-out line needs the date it left (status_date)")),
            assigns_subscriber_ids=True,
            mirror="tagging.Subscriber",
            description="Subscriber master data; a later file updates subscribers it names again.",
        ),
        Dataset(
            "subscriptions",
            Kind.MASTER,
            (MSISDN, Column("product_code", "text", length=32), Column("start_date", "date"), Column("end_date", "date", required=False)),
            key=("msisdn", "product_code", "start_date"),
            references=(SUBSCRIBER_REF, Reference("product_code", "product", "unknown product code")),
            checks=(RowCheck("end_date", "end_date < start_date", "end date before start date"),),
            mirror="tagging.Subscription",
            description="Who holds which product from when to when; a later row with the same key updates the end date.",
        ),
        Dataset(
            "usage_daily",
            Kind.FACT,
            (
                MSISDN,
                Column("date", "date"),
                _count("voice_calls", 5000),
                _amount("voice_minutes", 1440 * 4),
                _count("onnet_calls", 5000),
                _count("offnet_calls", 5000),
                _count("competitor_calls", 5000),
                _count("sms", 100_000),
                _count("mms", 10_000),
                _amount("data_mb", 2_000_000),
                _amount("roaming_minutes", 1440 * 4),
                _count("night_calls", 5000),
                Column("charge_yuan", "decimal", minimum=-10_000, maximum=1_000_000),
            ),
            key=("msisdn", "date"),
            references=(SUBSCRIBER_REF,),
            checks=(
                RowCheck("date", f"date < {EARLIEST_DATE} OR date > current_date", "date out of range (future or before 1990)"),
                RowCheck("onnet_calls", "onnet_calls + offnet_calls > voice_calls", "on-net + off-net calls exceed voice calls"),
                RowCheck("competitor_calls", "competitor_calls > offnet_calls", "competitor calls exceed off-net calls"),
                RowCheck("night_calls", "night_calls > voice_calls", "night calls exceed voice calls"),
            ),
            period="date",
            description="Daily usage and charges per subscriber.",
        ),
        Dataset(
            "stays",
            Kind.FACT,
            (MSISDN, Column("cell_key", "text", length=64), Column("start_time", "timestamp"), Column("end_time", "timestamp")),
            key=("msisdn", "start_time"),
            references=(SUBSCRIBER_REF, CELL_REF),
            checks=(
                RowCheck("end_time", "end_time < start_time", "end time before start time"),
                RowCheck("end_time", "end_time > start_time + INTERVAL 3 DAY", "stay longer than 3 days"),
                RowCheck("start_time", "start_time > now() + INTERVAL 1 DAY", "start time in the future"),
            ),
            period="start_time",
            description="A subscriber attached to a cell for a while, from signalling.",
        ),
        Dataset(
            "events",
            Kind.FACT,
            (
                MSISDN,
                Column("time", "timestamp"),
                Column("kind", "enum", choices=EVENT_KINDS),
                Column("cell_key", "text", required=False, length=64),
                Column("imei", "digits", required=False, length=15),
                # The receiving operator of a port_out (携号转网).
                Column("operator", "enum", required=False, choices=RECEIVING_OPERATORS),
            ),
            key=("msisdn", "time", "kind"),
            references=(SUBSCRIBER_REF, CELL_REF),
            checks=(
                RowCheck("time", "time > now() + INTERVAL 1 DAY", "time in the future"),
                RowCheck("imei", "kind = 'imei_change' AND imei IS NULL", "imei_change without an IMEI"),
                RowCheck("operator", "kind = 'port_out' AND operator IS NULL", "port_out without the receiving operator"),
                RowCheck("operator", "kind <> 'port_out' AND operator IS NOT NULL", "only a port_out names an operator"),
            ),
            period="time",
            description="Signalling events that can trigger touch-point marketing.",
        ),
        Dataset(
            "imei_observations",
            Kind.FACT,
            (
                MSISDN, Column("date", "date"), Column("imei", "digits", length=15),
                # What the handset reports about itself (device management), where the source has it.
                Column("brand", "text", required=False, length=64),
                Column("model", "text", required=False, length=128),
            ),
            key=("msisdn", "date", "imei"),
            references=(SUBSCRIBER_REF,),
            checks=(RowCheck("date", f"date < {EARLIEST_DATE} OR date > current_date", "date out of range (future or before 1990)"),),
            period="date",
            description="The handset (IMEI) a subscriber used on a day, with the brand and model it reports when known.",
        ),
        Dataset(
            "tac_catalogue",
            Kind.MASTER,
            (
                Column("tac", "digits", length=8),
                Column("brand", "text", length=64),
                Column("model", "text", length=128),
                Column("release_year", "int", required=False, minimum=1990, maximum=2100),
                Column("tier", "enum", choices=("low", "mid", "high", "flagship")),
                Column("network", "enum", choices=("2G", "3G", "4G", "5G")),
                Column("os", "text", required=False, length=32),
                _amount("price_yuan", 1_000_000),
            ),
            key=("tac",),
            description="Type Allocation Codes: the first 8 digits of an IMEI name the handset model.",
        ),
        Dataset(
            "cells",
            Kind.MASTER,
            (
                Column("radio", "enum", choices=("GSM", "UMTS", "LTE", "NR", "CDMA")),
                Column("mcc", "int", minimum=100, maximum=999),
                Column("net", "int", minimum=0, maximum=999),
                Column("area", "int", minimum=0, maximum=16_777_215),
                Column("cell", "int", minimum=0, maximum=68_719_476_735),
                Column("unit", "int", required=False, minimum=0),
                Column("lon", "decimal", minimum=-180, maximum=180),
                Column("lat", "decimal", minimum=-90, maximum=90),
                Column("range", "int", required=False, minimum=0, maximum=100_000),
                Column("samples", "int", required=False, minimum=0),
                Column("changeable", "int", required=False, minimum=0, maximum=1),
                Column("created", "int", required=False, minimum=0),
                Column("updated", "int", required=False, minimum=0),
                Column("averageSignal", "int", required=False, minimum=-200, maximum=0),
                Column("azimuth", "decimal", required=False, minimum=0, maximum=360),
                Column("beamwidth", "decimal", required=False, minimum=1, maximum=360),
                Column("site_id", "text", required=False, length=64),
            ),
            key=("radio", "mcc", "net", "area", "cell"),
            headerless_columns=(
                "radio", "mcc", "net", "area", "cell", "unit", "lon", "lat", "range", "samples", "changeable",
                "created", "updated", "averageSignal",
            ),
            derived=(("cell_key", "concat_ws('-', s.radio, s.mcc, s.net, s.area, s.cell)"),),
            description="Radio cells in OpenCelliD format; cell_key = radio-mcc-net-area-cell.",
        ),
        Dataset(
            "app_catalogue",
            Kind.MASTER,
            (
                Column("app_id", "text", length=32),
                Column("name", "text", length=64),
                Column("name_en", "text", required=False, length=64),
                Column("category", "enum", choices=APP_CATEGORIES),
            ),
            key=("app_id",),
            checks=(RowCheck("app_id", "NOT regexp_full_match(app_id, '[A-Za-z0-9_.\\-]+')",
                             "app id must be letters, digits, _, . or -"),),
            description="The DPI signature library's apps: what traffic flows are classified as, and each app's category.",
        ),
        Dataset(
            "app_usage_daily",
            Kind.FACT,
            (
                MSISDN,
                Column("date", "date"),
                Column("app_id", "text", length=32),
                _count("sessions", 100_000),
                _count("seconds", 86_400),
                _count("bytes_up", 1e13),
                _count("bytes_down", 1e13),
            ),
            key=("msisdn", "date", "app_id"),
            references=(SUBSCRIBER_REF, Reference("app_id", "app", "unknown app: ingest it in app_catalogue first")),
            checks=(RowCheck("date", f"date < {EARLIEST_DATE} OR date > current_date", "date out of range (future or before 1990)"),),
            period="date",
            description="What a subscriber did online: sessions, time and bytes per app and day, from the DPI/xDR records.",
        ),
        Dataset(
            "call_records",
            Kind.FACT,
            (
                Column("caller", "phone"),
                Column("callee", "phone"),
                Column("start_time", "timestamp"),
                _count("seconds", 86_400),
                Column("kind", "enum", choices=("voice", "sms")),
            ),
            key=("caller", "callee", "start_time", "kind"),
            checks=(
                RowCheck("callee", "callee = caller", "a call to oneself"),
                RowCheck("start_time", f"start_time < {EARLIEST_DATE} OR start_time > now() + INTERVAL 1 DAY",
                         "start time out of range (future or before 1990)"),
                # subscriber_ids: the lake's (msisdn, subscriber_id), a view every pass over these records opens.
                RowCheck("caller", "caller NOT IN (SELECT msisdn FROM subscriber_ids) AND callee NOT IN (SELECT msisdn FROM subscriber_ids)",
                         "neither the caller nor the callee is a subscriber of the operator"),
            ),
            period="start_time",
            parties=("caller", "callee"),
            description="Calls and SMS between numbers of any network (the switch's CDRs); the other end of a subscriber's "
                        "record is stored as a keyed pseudonym and its network, never as a number.",
        ),
        Dataset(
            "contact_results",
            Kind.FACT,
            (
                Column("campaign", "text", length=64),
                MSISDN,
                Column("contacted_at", "timestamp"),
                Column("channel", "enum", choices=("outbound_call", "sms", "app_push", "store")),
                Column("outcome", "enum", choices=("no_answer", "refused", "accepted", "converted")),
            ),
            key=("campaign", "msisdn", "contacted_at"),
            references=(SUBSCRIBER_REF, Reference("campaign", "campaign", "unknown campaign"),
                        # An outcome is for someone the campaign gave field teams to contact.
                        Reference("msisdn", "campaign_contact", "not on the campaign's contact list",
                                  sql="campaign || ':' || subscriber_id")),
            checks=(RowCheck("contacted_at", "contacted_at > now() + INTERVAL 1 DAY", "contact time in the future"),),
            period="contacted_at",
            description="What happened when a field team contacted a campaign target.",
        ),
    ]
}

# The order a whole city folder is ingested in: references before what refers to them.
INGEST_ORDER = [
    "regions", "products", "tac_catalogue", "cells", "subscribers", "subscriptions", "usage_daily",
    "stays", "events", "imei_observations", "app_catalogue", "app_usage_daily", "call_records",
]
