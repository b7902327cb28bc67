"""Rate limits of the worker's JSON endpoints, as DRF throttles counted in Django's cache (Redis
in production, shared by every web process): per client IP (``services.limits.client_ip``, which
trusts ``X-Forwarded-For`` only behind ``TRUSTED_PROXY_COUNT`` proxies) and per study. Over
either, DRF answers 429 with ``Retry-After``."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from .services.limits import client_ip


class _SettingRateThrottle(SimpleRateThrottle):
    """The rate (DRF's ``"<n>/<second|minute|hour|day>"``) read from the setting ``rate_setting``
    on every request, so tests and operators can change it without a restart of DRF's class."""

    rate_setting = ""

    def get_rate(self) -> str:
        return getattr(settings, self.rate_setting)


class HitClientThrottle(_SettingRateThrottle):
    scope = "hit-client"
    rate_setting = "HIT_API_RATE_PER_IP"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request.META)}


class HitStudyThrottle(_SettingRateThrottle):
    scope = "hit-study"
    rate_setting = "HIT_API_RATE_PER_STUDY"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": view.kwargs.get("study", "")}
