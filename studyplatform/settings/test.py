"""Settings for the test suite: the base ones with a fixed key and fast hashing.

The database comes from ``DATABASE_URL`` as everywhere else (CI points it at PostgreSQL); on
SQLite the test database is a file, so a real Celery worker started by a test can open it too.
"""

import os
import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import DATABASES, env_str

SECRET_KEY = "test-only-key-not-secret-" + "x" * 40
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    _test_dir = Path(env_str("TEST_DATA_DIR", tempfile.gettempdir()))
    DATABASES["default"]["TEST"] = {
        "NAME": str(_test_dir / f"studyplatform-test-{os.getpid()}.sqlite3"),
    }

# Tests give each test its own media folder (tests/conftest.py) and pass it to the processes
# they start as MEDIA_ROOT; the temporary folder is only the fallback.
MEDIA_ROOT = Path(
    env_str("MEDIA_ROOT", str(Path(tempfile.gettempdir()) / "studyplatform-test-media"))
)
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# The live server's thread must not keep its connection past a test (PostgreSQL cannot drop the
# test database while a connection is open).
DATABASES["default"]["CONN_MAX_AGE"] = 0

# The squatting limits count across a whole test process (one cache, one client IP): tests of
# other behaviour open HITs without them, and the tests of the limits set their own.
HIT_OPEN_PER_IP_PER_10_MINUTES = 10**6
HIT_OPEN_PER_STUDY_PER_MINUTE = 10**6
HIT_NO_PROGRESS_MAX_SHARE = 1.0
HIT_API_RATE_PER_IP = "1000000/second"
HIT_API_RATE_PER_STUDY = "1000000/second"
