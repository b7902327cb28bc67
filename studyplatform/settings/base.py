"""Settings shared by every environment, read from environment variables.

Every variable is listed with its default in the README's Configuration section. Defaults are safe
for a laptop: SQLite under the data folder, tasks run in-process (no broker), files on local disk.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or default


def env_bool(name: str, default: bool) -> bool:
    value = env_str(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false, yes/no).")


def env_int(name: str, default: int) -> int:
    value = env_str(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = env_str(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


BASE_DIR = Path(__file__).resolve().parent.parent.parent
# Feature files, caches, the SQLite database and (by default) uploaded media live here.
DATA_DIR = Path(env_str("STUDYPLATFORM_DATA_DIR", str(BASE_DIR / "data"))).resolve()

DEBUG = False
SECRET_KEY = env_str("SECRET_KEY")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "studyplatform.apps.PlatformConfig",
    "studyplatform.studies.apps.StudiesConfig",
    "retrieval.apps.RetrievalConfig",
    "explain.apps.ExplainConfig",
    "mturk.apps.MturkConfig",
    "analysis.apps.AnalysisConfig",
    "studyplatform.outbox.apps.OutboxConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "studyplatform.urls"
WSGI_APPLICATION = "studyplatform.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "studyplatform" / "templates"],
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

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while a worker writes; IMMEDIATE takes the write lock at
    # BEGIN so two writers queue on `timeout` instead of failing with "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (Redis when REDIS_URL is set) -----------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Files --------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media")))
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
if AWS_STORAGE_BUCKET_NAME:
    # Credentials come from the standard AWS variables, profile or instance role (boto3's chain);
    # they are never read into settings.
    DEFAULT_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "region_name": env_str("AWS_S3_REGION_NAME"),
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL"),
            "custom_domain": env_str("AWS_S3_CUSTOM_DOMAIN"),
            "location": env_str("AWS_S3_LOCATION", ""),
            "file_overwrite": False,
            "querystring_auth": env_bool("AWS_QUERYSTRING_AUTH", True),
        },
    }
else:
    DEFAULT_STORAGE = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": DEFAULT_STORAGE,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Auth, i18n ---------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- API ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "studyplatform API",
    "DESCRIPTION": "Archives, studies, saliency maps, MTurk and analysis for explainable image retrieval studies.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema names every endpoint and field of the researcher API: staff only.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAdminUser"],
}

# --- Celery ---------------------------------------------------------------------------------------
# Without a broker, tasks run in the calling process, so the embedded demo needs no server.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = (Queue("default"), Queue("gpu"))
# Routing by task module; the first matching pattern wins. Archive bookkeeping in retrieval is
# CPU work; everything else in retrieval/explain (features, saliency, re-ranking) needs the GPU.
CELERY_TASK_ROUTES = {
    "retrieval.tasks.archive_*": {"queue": "default"},
    "retrieval.tasks.*": {"queue": "gpu"},
    "explain.tasks.saliency_overlays_*": {"queue": "default"},
    "explain.tasks.*": {"queue": "gpu"},
    # A worker's refine round: IQR over the archive and its missing saliency maps.
    "studyplatform.studies.tasks.search_round_*": {"queue": "gpu"},
    "mturk.tasks.*": {"queue": "default"},
    "analysis.tasks.*": {"queue": "default"},
    "studyplatform.outbox.tasks.*": {"queue": "default"},
}
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 60 * 60 * 24
CELERY_TASK_TRACK_STARTED = True
# Hard and soft limits for every task; long GPU tasks set their own, larger ones.
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 30 * 60)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 35 * 60)
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("CELERY_WORKER_PREFETCH_MULTIPLIER", 4)
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Longer than the longest hard time limit, so Redis does not redeliver a task that is still
    # running on an acks_late worker.
    # (CELERY_VISIBILITY_TIMEOUT, seconds; it is also how long a message of a worker that died
    # whole waits before another worker takes it.)
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 6 * 60 * 60),
}
# Reconcile every live study's assignments with MTurk (mturk.services: sync) every 10 minutes.
CELERY_BEAT_SCHEDULE: dict = {
    "mturk-sync": {
        "task": "mturk.tasks.mturk_sync_live",
        "schedule": env_int("MTURK_SYNC_SECONDS", 600),
    },
    # Publish again what the outbox still holds (studyplatform.outbox): entries a broker outage
    # kept from being sent, or whose message was lost.
    "outbox-sweep": {
        "task": "studyplatform.outbox.tasks.outbox_sweep",
        "schedule": env_int("OUTBOX_SWEEP_SECONDS", 30),
    },
}
# An outbox entry published this many seconds ago and still not done is published again.
OUTBOX_REPUBLISH_SECONDS = env_int("OUTBOX_REPUBLISH_SECONDS", 120)

# --- Logging --------------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- Platform -----------------------------------------------------------------------------------
# Masked-image embeddings of SBSM (query-independent, float16), reused across queries and rounds.
SALIENCY_CACHE_DIR = Path(
    env_str("SALIENCY_CACHE_DIR", str(DATA_DIR / "cache" / "masked-embeddings"))
)
SALIENCY_CACHE_BYTES = env_int("SALIENCY_CACHE_BYTES", 10 * 1024**3)
# Thumbnails shown in the admin and on task pages, longest side in pixels.
THUMBNAIL_SIZE = env_int("THUMBNAIL_SIZE", 160)

# --- Worker pages (HITs) inside MTurk's iframe -------------------------------------------------
# Everything else keeps X-Frame-Options: DENY; the HIT views are exempt and send a CSP
# frame-ancestors list instead: MTurk's worker sites plus HIT_EXTRA_FRAME_ANCESTORS (e.g. the
# origin of a local MTurk endpoint: http://127.0.0.1:4000).
X_FRAME_OPTIONS = "DENY"
HIT_FRAME_ANCESTORS = [
    "https://*.mturk.com",
    "https://workersandbox.mturk.com",
    "https://worker.mturk.com",
    *env_list("HIT_EXTRA_FRAME_ANCESTORS"),
]
# Where the final form may be POSTed (turkSubmitTo): an https host under mturk.com, or one of
# these exact origins (a local MTurk endpoint, e.g. http://127.0.0.1:4000).
HIT_EXTRA_SUBMIT_ORIGINS = env_list("HIT_EXTRA_SUBMIT_ORIGINS")
# Inside MTurk's iframe the platform is a third party: its session and CSRF cookies are sent
# only with SameSite=None, which browsers accept only on Secure (HTTPS) cookies. Plain-HTTP
# demos and tests keep the default Lax cookies, served first-party.
HIT_CROSS_SITE_COOKIES = env_bool("HIT_CROSS_SITE_COOKIES", False)
if HIT_CROSS_SITE_COOKIES:
    SESSION_COOKIE_SAMESITE = "None"
    CSRF_COOKIE_SAMESITE = "None"
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
# Largest JSON body a worker page may POST (bytes); larger ones get 413.
HIT_MAX_BODY_BYTES = env_int("HIT_MAX_BODY_BYTES", 16 * 1024)
# Squatting limits. An active assignment that has begun no search task this many minutes after
# it started frees its cell, however often its page reports in.
HIT_NO_PROGRESS_MINUTES = env_int("HIT_NO_PROGRESS_MINUTES", 20)
# New assignments wait while this share of a study's places is held by participants who have
# not begun a search task.
HIT_NO_PROGRESS_MAX_SHARE = float(os.environ.get("HIT_NO_PROGRESS_MAX_SHARE", "0.5"))
# Opening a HIT (the MTurk page or a lab code), counted in Django's cache (Redis when
# REDIS_URL is set, so every web process shares the counts): per client IP per 10 minutes and
# per study per minute; over either, the page answers 429. The per-study count lets a launch's
# burst in (hundreds of workers accept in the first minute after HITs are posted); squatting
# from one address is held by the per-IP count and HIT_NO_PROGRESS_MAX_SHARE.
HIT_OPEN_PER_IP_PER_10_MINUTES = env_int("HIT_OPEN_PER_IP_PER_10_MINUTES", 30)
HIT_OPEN_PER_STUDY_PER_MINUTE = env_int("HIT_OPEN_PER_STUDY_PER_MINUTE", 600)
# Requests to the worker page's JSON endpoints (images included), in DRF's rate syntax, per
# client IP (a lab room shares one) and per study; over either: 429.
HIT_API_RATE_PER_IP = os.environ.get("HIT_API_RATE_PER_IP", "1200/minute")
HIT_API_RATE_PER_STUDY = os.environ.get("HIT_API_RATE_PER_STUDY", "20000/minute")
# How many reverse proxies in front of the web process append to X-Forwarded-For (the client's
# IP is the one they saw); 0: the client's IP is REMOTE_ADDR and the header is ignored.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
# Longest side of the images shown on task pages, in pixels.
HIT_IMAGE_SIZE = env_int("HIT_IMAGE_SIZE", 256)

# --- MTurk ------------------------------------------------------------------------------------
# "sandbox" (default), "local" (the MTurk-compatible endpoint of `manage.py mturk_local_server`)
# or "production"; production also needs MTURK_ALLOW_PRODUCTION=1 and `mturk: {production: true}`
# in the study spec. AWS credentials come from boto3's chain, never from the database.
MTURK_ENVIRONMENT = env_str("MTURK_ENVIRONMENT", "sandbox")
MTURK_ALLOW_PRODUCTION = env_bool("MTURK_ALLOW_PRODUCTION", False)
MTURK_LOCAL_URL = env_str("MTURK_LOCAL_URL", "http://127.0.0.1:8765")
MTURK_MAX_ATTEMPTS = env_int("MTURK_MAX_ATTEMPTS", 5)
MTURK_CONNECT_TIMEOUT = env_int("MTURK_CONNECT_TIMEOUT", 10)
MTURK_READ_TIMEOUT = env_int("MTURK_READ_TIMEOUT", 30)
# The platform's public origin, for the ExternalQuestion URL of HITs (https:// except for the
# local endpoint).
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL")
