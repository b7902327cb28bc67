"""Rate limits on opening HITs, counted in Django's cache (Redis in production, so every web
process shares one count; a process's own memory in development and tests).

Fixed windows: a count per (name, key, window number) that expires with its window. A burst
can straddle two windows and reach twice the limit for an instant; the limits are set for
squatting (dozens of fake ids a minute), where that does not matter.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache


def rate_limit_take(*, name: str, key: str, limit: int, window_seconds: int) -> bool:
    """Count one request of ``key`` under limit ``name``; False once the window holds more than
    ``limit`` (the request is counted all the same, so hammering does not reopen the window)."""
    window = int(time.time() // window_seconds)
    cache_key = f"rate:{name}:{key}:{window}"
    cache.add(cache_key, 0, timeout=window_seconds + 1)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.set(cache_key, 1, timeout=window_seconds + 1)
        count = 1
    return count <= limit


def client_ip(meta: dict) -> str:
    """The client's IP: ``REMOTE_ADDR``, or behind ``settings.TRUSTED_PROXY_COUNT`` proxies the
    address the outermost trusted proxy saw (that many entries from the right of
    ``X-Forwarded-For``; entries further left are the client's to write and are ignored)."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        chain = [ip.strip() for ip in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if ip.strip()]
        if len(chain) >= proxies:
            return chain[-proxies]
    return meta.get("REMOTE_ADDR", "")


def hit_open_allowed(*, study_slug: str, ip: str) -> bool:
    """Count one opening of a HIT of ``study_slug`` from ``ip``; False when over the per-IP or
    the per-study limit (``HIT_OPEN_PER_IP_PER_10_MINUTES``, ``HIT_OPEN_PER_STUDY_PER_MINUTE``)."""
    per_ip = rate_limit_take(
        name="hit-open-ip",
        key=ip,
        limit=settings.HIT_OPEN_PER_IP_PER_10_MINUTES,
        window_seconds=600,
    )
    per_study = rate_limit_take(
        name="hit-open-study",
        key=study_slug,
        limit=settings.HIT_OPEN_PER_STUDY_PER_MINUTE,
        window_seconds=60,
    )
    return per_ip and per_study
