"""Settings, read from the environment only (see .env.example for every variable).

Production by default: DEBUG is off unless DEBUG=1, and then SECRET_KEY, PSEUDONYM_KEY and ALLOWED_HOSTS must be
given. With DEBUG=1 and nothing else this is the embedded default (what `make demo` and `make test` set): SQLite
under DATA_DIR, a local lake folder and Celery tasks run eagerly in-process. A bad value stops start-up with a
message naming it.
"""

import importlib.util
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use 1/0, true/false, yes/no or on/off.")


def _env_int(name: str, default: int, *, minimum: int = 0, maximum: float = float("inf"), kind: type = int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not {'a whole number' if kind is int else 'a number'}.") from None
    if not value >= minimum:  # also refuses nan
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
    if value > maximum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at most {maximum}.")
    return value


def _env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    return _env_int(name, default, minimum=minimum, kind=float)


def _env_rate(name: str, default: str) -> str:
    """A request rate as DRF writes it: a number, a slash and sec, min, hour or day ("120/min")."""
    raw = os.environ.get(name) or default
    count, _, period = raw.partition("/")
    if not count.isdigit() or int(count) < 1 or period[:1] not in {"s", "m", "h", "d"}:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a rate like 120/min (a count per sec, min, hour or day).")
    return raw


def _env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def _env_float_list(name: str, default: list[float]) -> list[float]:
    try:
        return [float(item) for item in _env_list(name, [str(d) for d in default])]
    except ValueError:
        raise ImproperlyConfigured(f"{name}={os.environ.get(name)!r} is not a list of numbers separated by commas.") from None


DEBUG = _env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (50+ random characters).")
    SECRET_KEY = "dev-only-insecure-key-never-use-in-production-0123456789abcdefghij"
elif not DEBUG and (len(SECRET_KEY) < 50 or SECRET_KEY.startswith("dev-only")):
    raise ImproperlyConfigured("SECRET_KEY is too weak for production: use 50+ random characters.")

# Subscribers are analysed under a keyed HMAC pseudonym; the key must be stable for the life of the
# data (changing it re-keys every pseudonym) and secret, so production refuses to start without one.
PSEUDONYM_KEY = os.environ.get("PSEUDONYM_KEY", "")
if not PSEUDONYM_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("PSEUDONYM_KEY must be set when DEBUG is off (32+ random characters).")
    PSEUDONYM_KEY = "dev-only-pseudonym-key-0123456789abcdef"
elif len(PSEUDONYM_KEY) < 16:
    raise ImproperlyConfigured("PSEUDONYM_KEY is too short: use at least 16 (better 32+) random characters.")

DATA_DIR = Path(os.environ.get("DATA_DIR") or BASE_DIR / "var").resolve()
LAKE_DIR = DATA_DIR / "lake"
try:
    (DATA_DIR / "static").mkdir(parents=True, exist_ok=True)  # also STATIC_ROOT, below
except OSError as exc:
    raise ImproperlyConfigured(f"DATA_DIR={str(DATA_DIR)!r} cannot be created: {exc}") from None

ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must list the service's host names when DEBUG is off.")
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS", [])

_database_url = os.environ.get("DATABASE_URL", "")
if _database_url:
    try:
        _database = dj_database_url.parse(_database_url, conn_max_age=60, conn_health_checks=True)
    except Exception as exc:  # dj_database_url raises several types for a malformed URL
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
    if _database.get("ENGINE") not in {"django.db.backends.postgresql", "django.db.backends.sqlite3"}:
        raise ImproperlyConfigured("DATABASE_URL must be postgres://... or sqlite:///...")
else:
    _database = {"ENGINE": "django.db.backends.sqlite3", "NAME": DATA_DIR / "db.sqlite3"}
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while an ingest or a snapshot run writes.
    _database.setdefault("OPTIONS", {})["init_command"] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    _database["OPTIONS"]["timeout"] = 30
DATABASES = {"default": _database}

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL and urlparse(REDIS_URL).scheme not in {"redis", "rediss"}:
    raise ImproperlyConfigured(f"REDIS_URL={REDIS_URL!r} must start with redis:// or rediss://.")

MAP_TILE_URL = os.environ.get("MAP_TILE_URL", "")
if MAP_TILE_URL:
    if urlparse(MAP_TILE_URL).scheme not in {"http", "https"} or not all(
        part in MAP_TILE_URL for part in ("{z}", "{x}", "{y}")
    ):
        raise ImproperlyConfigured(
            f"MAP_TILE_URL={MAP_TILE_URL!r} must be an http(s) tile template with {{z}}, {{x}} and {{y}}."
        )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "tagging",
    "microarea",
    "campaigns",
]
# The demo (simulated city, demo accounts with public passwords, closed loop) exists in development mode only.
if DEBUG:
    INSTALLED_APPS.append("demo")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # answers a locked-out sign-in (429)
]
AUTHENTICATION_BACKENDS = ["tagging.services.audit.SignInLockout", "django.contrib.auth.backends.ModelBackend"]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

PASSWORD_MIN_LENGTH = _env_int("PASSWORD_MIN_LENGTH", 12, minimum=8)  # graded protection (等保) asks for 8+; we ask 12
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": PASSWORD_MIN_LENGTH}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "zh-hans"
# Chinese by default, English chosen in the header (a cookie) or by the browser; the catalogues are compiled in
# the repository (locale/), so nothing is needed at install.
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_THOUSAND_SEPARATOR = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
# Leaflet and Leaflet.draw come with the django-leaflet package; only its static files are used (as an app
# it would load GeoDjango, which needs GDAL), so nothing is fetched from a CDN.
STATICFILES_DIRS = [BASE_DIR / "static", Path(importlib.util.find_spec("leaflet").origin).parent / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Sessions end after this many minutes without a request (each request moves the end on).
SESSION_IDLE_MINUTES = _env_int("SESSION_IDLE_MINUTES", 30, minimum=1)
SESSION_COOKIE_AGE = SESSION_IDLE_MINUTES * 60
SESSION_SAVE_EVERY_REQUEST = True

# Behind a TLS proxy that sets X-Forwarded-Proto and appends the caller to X-Forwarded-For, say so: only then are
# those headers believed (for HTTPS, and for the address sign-in lockouts and rates are keyed by). Otherwise anyone
# could send them.
PROXY_SETS_FORWARDED_HEADERS = _env_bool("PROXY_SETS_FORWARDED_HEADERS", False)
if PROXY_SETS_FORWARDED_HEADERS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Sign-in lockout (django-axes): this many failures for one user name from one address lock that pair out for the
# given minutes; the same user from elsewhere, or others from that address, are not locked out.
LOGIN_FAILURE_LIMIT = _env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_LOCKOUT_MINUTES = _env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "tagging.services.audit.client_address"
AXES_LOCKOUT_CALLABLE = "config.views.locked_out"

if not DEBUG:
    SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = _env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

REST_FRAMEWORK = {
    # Token first: a request without credentials, or with an expired token, is told so (401, naming Token).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tagging.api.authentication.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "tagging.api.exceptions.exception_handler",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend", "rest_framework.filters.SearchFilter"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Per-user rates of the heavy questions (per address for sign-in); over one: 429 with Retry-After.
    "DEFAULT_THROTTLE_RATES": {scope: _env_rate(f"RATE_{scope.upper()}", default) for scope, default in {
        "preview": "120/min", "profile": "30/min", "export": "60/hour", "sign_in": "20/min"}.items()},
    # The address a rate counts: our proxy's last X-Forwarded-For entry when one is declared, else the socket's.
    "NUM_PROXIES": 1 if PROXY_SETS_FORWARDED_HEADERS else 0,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Precision marketing API (精准营销)",
    "DESCRIPTION": "User tag library, terminal and location-ownership snapshots, micro-areas and campaigns.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Served from the installed sidecar package: operator intranets have no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "SubscriberStatusEnum": "tagging.models.Subscriber.Status",
        "IngestBatchStatusEnum": "tagging.models.IngestBatch.Status",
        "SnapshotRunStatusEnum": "tagging.models.SnapshotRun.Status",
        "SnapshotPartitionStatusEnum": "tagging.models.SnapshotPartition.Status",
        "TagKindEnum": "tagging.models.TagDefinition.Kind",
        "MicroAreaKindEnum": "microarea.models.MicroArea.Kind",
    },
}

# Rates and lockouts count in the cache: Redis, shared by every web process, when there is one.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                      "KEY_PREFIX": "cache"} if REDIS_URL else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: without REDIS_URL every task runs eagerly in the calling process, on the same code path.
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
# Eager tasks record their own failures in the database (run state lives there); not propagating
# lets Celery's eager apply() perform the same bounded retries a worker would.
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True  # run state lives in the database, not in Celery results
CELERY_TIMEZONE = TIME_ZONE

# Snapshot runs split subscribers into id ranges of this size, one Celery task each.
SNAPSHOT_PARTITION_SIZE = _env_int("SNAPSHOT_PARTITION_SIZE", 250_000, minimum=1)
SNAPSHOT_WINDOW_DAYS = _env_int("SNAPSHOT_WINDOW_DAYS", 30, minimum=1, maximum=366)
# A partition claimed longer ago than this is taken to be abandoned (its worker died) and is re-claimed. So that
# a partition never runs twice at once, its task is stopped before the lease ends (a soft limit at 85% of it, which
# records the failure and retries; a hard one at 90%, which kills the process), and the broker redelivers an
# unacknowledged task only after the lease has passed.
SNAPSHOT_PARTITION_LEASE_SECONDS = _env_int("SNAPSHOT_PARTITION_LEASE_SECONDS", 1800, minimum=2)
SNAPSHOT_PARTITION_SOFT_TIME_LIMIT = SNAPSHOT_PARTITION_LEASE_SECONDS * 0.85
SNAPSHOT_PARTITION_TIME_LIMIT = SNAPSHOT_PARTITION_LEASE_SECONDS * 0.9
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": SNAPSHOT_PARTITION_LEASE_SECONDS + 600}
# Behaviour segments: k of the k-means (0 turns segments off) and its seed, for reproducible runs.
SEGMENT_COUNT = _env_int("SEGMENT_COUNT", 8, minimum=0)
SEGMENT_SEED = _env_int("SEGMENT_SEED", 7, minimum=0)
# How far back a run reads IMEI observations (handset chains, change cycles), and how many distinct
# models one TAC may be reported with before the reports its catalogue entry does not match are clones.
TERMINAL_HISTORY_DAYS = _env_int("TERMINAL_HISTORY_DAYS", 3 * 365, minimum=30)
TERMINAL_CLONE_MODELS = _env_int("TERMINAL_CLONE_MODELS", 3, minimum=2)
# Location inference: night hours [from, to) for home, weekday office hours [from, to) for work (local
# time), and the distinct days a cell must be seen at those hours before it is taken as home or work.
LOCATION_NIGHT_HOURS = (_env_int("LOCATION_NIGHT_FROM", 21, minimum=0), _env_int("LOCATION_NIGHT_TO", 7, minimum=0))
LOCATION_OFFICE_HOURS = (_env_int("LOCATION_OFFICE_FROM", 9, minimum=0), _env_int("LOCATION_OFFICE_TO", 18, minimum=0))
LOCATION_MIN_DAYS = _env_int("LOCATION_MIN_DAYS", 3, minimum=1)
# The operator this deployment serves: its numbers are on-net, the other networks' off-net (call circles, 网间通话).
OPERATOR_NETWORK = os.environ.get("OPERATOR_NETWORK", "cmcc")
if OPERATOR_NETWORK not in ("cmcc", "cu", "ct", "cbn"):
    raise ImproperlyConfigured(f"OPERATOR_NETWORK must be cmcc, cu, ct or cbn, not {OPERATOR_NETWORK!r}.")
# Areas (hexes, micro-areas) with fewer subscribers than this show no counts to sales users.
AREA_MIN_COUNT = _env_int("AREA_MIN_COUNT", 5, minimum=1)
# A micro-area holds at most this many res-9 hexes (~0.1 km² each: 200,000 is ~21,000 km², a large prefecture),
# known from the hexes' resolutions or the polygon's area before any is listed; hexes given coarser than this
# resolution are refused (a res-5 hex is 2,401 res-9 hexes).
MICROAREA_MAX_HEXES = _env_int("MICROAREA_MAX_HEXES", 200_000, minimum=1)
MICROAREA_COARSEST_RESOLUTION = _env_int("MICROAREA_COARSEST_RESOLUTION", 5, minimum=0, maximum=9)
# Contact policy, applied when a campaign is frozen: at most this many contacts per subscriber per 30 days
# across campaigns (from contact_results), and never the members of the imported list tagged CONTACT_DND_TAG.
CONTACT_MAX_PER_30_DAYS = _env_int("CONTACT_MAX_PER_30_DAYS", 4, minimum=1)
CONTACT_DND_TAG = os.environ.get("CONTACT_DND_TAG", "do_not_disturb")
# API tokens (field teams' tools) stop working this many hours after they were issued.
API_TOKEN_HOURS = _env_int("API_TOKEN_HOURS", 24 * 7, minimum=1)
# Propensity models: subscribers sampled to fit each product's model on, and the fewest take-ups of the
# product in the training population below which no model is fitted (its deciles stay empty).
PROPENSITY_TRAINING_ROWS = _env_int("PROPENSITY_TRAINING_ROWS", 300_000, minimum=1000)
PROPENSITY_MIN_TAKE_UPS = _env_int("PROPENSITY_MIN_TAKE_UPS", 20, minimum=1)
# Churn warning: the model learns from the latest snapshot at least CHURN_WINDOW_DAYS before the run's as-of date who
# closed or ported out in the CHURN_WINDOW_DAYS after it; it samples at most CHURN_TRAINING_ROWS active subscribers
# and fits nothing below CHURN_MIN_CHURNERS leavers among them.
CHURN_WINDOW_DAYS = _env_int("CHURN_WINDOW_DAYS", 30, minimum=7, maximum=180)  # as CHURN_WINDOW_BOUNDS, tagging/services/snapshots.py
# Response models: no model for a product with fewer conversions than this among earlier campaigns' reached contacts.
RESPONSE_MIN_CONVERSIONS = _env_int("RESPONSE_MIN_CONVERSIONS", 30, minimum=1)
CHURN_TRAINING_ROWS = _env_int("CHURN_TRAINING_ROWS", 500_000, minimum=1000)
CHURN_MIN_CHURNERS = _env_int("CHURN_MIN_CHURNERS", 50, minimum=1)
# Customer value: the high and mid tiers' shares of the active headcount by value score (the low tier is the rest).
VALUE_TIER_SHARES = tuple(_env_float_list("VALUE_TIER_SHARES", [0.2, 0.3]))
if len(VALUE_TIER_SHARES) != 2 or min(VALUE_TIER_SHARES) <= 0 or sum(VALUE_TIER_SHARES) >= 1:
    raise ImproperlyConfigured(f"VALUE_TIER_SHARES={VALUE_TIER_SHARES} must be two shares above 0 (high, mid) summing "
                               "to less than 1, e.g. 0.2,0.3.")
# Campaign economics (yuan): a contact's cost by channel when the campaign names none, and the months of revenue a
# conversion is worth when it names no value (a product's monthly fee, or a kept leaver's monthly revenue, times it).
# Defaults are the order of what Chinese operators pay: an outbound call centre minute-and-agent cost, a marketing SMS,
# an app push, a store visit's staff time; override with CAMPAIGN_COST_PER_CONTACT="outbound_call=2,sms=0.04,...".
CAMPAIGN_COST_PER_CONTACT = {"outbound_call": 1.5, "sms": 0.05, "app_push": 0.01, "store": 8.0}
for _item in _env_list("CAMPAIGN_COST_PER_CONTACT", []):
    _channel, _, _cost = _item.partition("=")
    try:
        _value = float(_cost)
    except ValueError:
        _value = float("nan")
    if _channel.strip() not in CAMPAIGN_COST_PER_CONTACT or not _value >= 0:
        raise ImproperlyConfigured(f"CAMPAIGN_COST_PER_CONTACT: {_item!r} is not channel=cost with a channel of "
                                   f"{', '.join(CAMPAIGN_COST_PER_CONTACT)} and a cost of 0 or more yuan.")
    CAMPAIGN_COST_PER_CONTACT[_channel.strip()] = _value
CAMPAIGN_VALUE_MONTHS = _env_int("CAMPAIGN_VALUE_MONTHS", 12, minimum=1, maximum=120)
# The performance page evaluates at most this many campaigns (the latest) per request: each is a query of the lake.
PERFORMANCE_MAX_CAMPAIGNS = _env_int("PERFORMANCE_MAX_CAMPAIGNS", 100, minimum=1, maximum=1000)
# Product association: a product seeds another's audience when its holders are this much likelier to
# hold that one (lift) and at least this share of subscribers holds both (support).
ASSOCIATION_MIN_LIFT = _env_float("ASSOCIATION_MIN_LIFT", 1.2, minimum=1.0)
ASSOCIATION_MIN_SUPPORT = _env_float("ASSOCIATION_MIN_SUPPORT", 0.01, minimum=0.0)
# Target rows one user may export per day, across campaigns (a list leaving the system is logged and capped).
EXPORT_ROWS_PER_DAY = _env_int("EXPORT_ROWS_PER_DAY", 2_000_000, minimum=1)
if not all(0 <= hour <= 24 for hour in (*LOCATION_NIGHT_HOURS, *LOCATION_OFFICE_HOURS)):
    raise ImproperlyConfigured("LOCATION_NIGHT_FROM/_TO and LOCATION_OFFICE_FROM/_TO are hours of the day, 0-24.")
# How many rejected rows an ingest report lists in full (the count is always exact).
INGEST_MAX_REPORTED_ERRORS = _env_int("INGEST_MAX_REPORTED_ERRORS", 1000, minimum=1)
DUCKDB_MEMORY_LIMIT = os.environ.get("DUCKDB_MEMORY_LIMIT", "8GB")
DUCKDB_THREADS = _env_int("DUCKDB_THREADS", 0)  # 0: DuckDB's default, one per core

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "celery": {"level": "WARNING"}, "kombu": {"level": "WARNING"},
                # Sign-ins and lockouts go to the audit log (AuditEvent); axes's own lines would repeat them.
                "axes": {"level": "WARNING"}},
}
