"""Development: DEBUG on, a secret key generated once and kept in the data folder."""

import os
import secrets

from .base import *  # noqa: F403
from .base import DATA_DIR, SECRET_KEY


def _local_secret_key() -> str:
    """Read the key from ``DATA_DIR/secret_key``, creating it (mode 0600) on first use."""
    path = DATA_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    # O_EXCL: if two processes start at once, the second reads the first one's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


DEBUG = True
SECRET_KEY = SECRET_KEY or _local_secret_key()
# Serve static files from the apps' folders, no collectstatic needed.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
