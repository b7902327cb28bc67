"""How a simulated worker's browser reaches the worker pages.

:class:`HttpTransport` speaks HTTP to a running platform (``requests``, one session of cookies
per worker), as the rehearsal's workers do against gunicorn; it retries what the page's script
retries (a connection error or a 5xx, with the same body and event id, with backoff, bounded in
count and time) and counts every answer by endpoint and status. :class:`WsgiTransport` hands
the same requests to the project's WSGI application in the calling thread (no socket): the
demo and the dry run use it to play a study before anything is served, and it sees the calling
thread's transaction.

Both answer ``(status, json-or-None)``; endpoint names are those of the ``hit`` namespace
(``state``, ``event``, ``begin``, ``refine``, ``finish``, ``answers``, ``tutorial``, ``submit``).
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

_CONFIG = re.compile(r'<script id="hit-config" type="application/json">(.*?)</script>', re.S)


@dataclass
class Traffic:
    """Answers seen, by ``"<METHOD> <endpoint> <status>"``, with their latencies in seconds,
    the wall-clock time (epoch seconds) of every 5xx or failed connection (status 0), retries
    made, and requests given up after the retry budget. Thread-safe."""

    counts: Counter = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    failures: list[tuple[float, str]] = field(default_factory=list)
    retries: int = 0
    gave_up: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self.counts[f"{method} {endpoint} {status}"] += 1
            self.latencies.setdefault(f"{method} {endpoint}", []).append(seconds)
            if status == 0 or status >= 500:
                self.failures.append((time.time(), f"{method} {endpoint} {status}"))

    def retried(self) -> None:
        with self._lock:
            self.retries += 1

    def as_dict(self) -> dict:
        with self._lock:
            return {
                "counts": dict(self.counts),
                "latencies": {k: list(v) for k, v in self.latencies.items()},
                "failures": list(self.failures),
                "retries": self.retries,
                "gave_up": self.gave_up,
            }


def hit_config(html: str) -> dict | None:
    """The page's ``hit-config`` JSON (assignment id, API base, CSRF token), or None."""
    match = _CONFIG.search(html)
    return json.loads(match.group(1)) if match else None


def _loopback_cookies_unsecured(jar) -> None:
    """Let ``Secure`` cookies of loopback hosts go over plain HTTP: there the driver stands in
    for the TLS proxy (it sends ``X-Forwarded-Proto: https``). Cookies of any other host keep
    the flag."""
    for cookie in jar:
        if cookie.secure and cookie.domain in ("127.0.0.1", "localhost", "localhost.local"):
            cookie.secure = False


def loopback_address(index: int) -> str:
    """A loopback address of its own for simulated worker ``index`` (0 to 16,580,607):
    ``127.<1 + index // 65025>.<index // 255 % 255>.<1 + index % 255>``, never ``127.0.0.1``."""
    if not 0 <= index < 255 * 255 * 255:
        raise ValueError(f"worker index must be in [0, {255**3}), got {index}")
    return f"127.{1 + index // 65025}.{index // 255 % 255}.{1 + index % 255}"


def _source_address_adapter(source_ip: str):
    """A ``requests`` adapter whose connections leave from ``source_ip`` (any port)."""
    from requests.adapters import HTTPAdapter

    class SourceAddressAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            kwargs["source_address"] = (source_ip, 0)
            super().init_poolmanager(*args, **kwargs)

    return SourceAddressAdapter()


class HttpTransport:
    """One worker's browser over HTTP against ``base_url`` (``http://127.0.0.1:18000``).

    Parameters
    ----------
    base_url : str
    study : str
        The study's slug.
    behind_proxy : bool
        Send ``X-Forwarded-Proto: https`` and an ``https://`` Origin, as the TLS proxy in front
        of a production deployment would (production settings redirect plain HTTP and send
        ``Secure`` cookies).
    retry_seconds : float
        Longest time one request is retried for (connection errors and 5xx), seconds.
    timeout : float
        Seconds per attempt.
    traffic : Traffic, optional
        Shared counters (one per run).
    source_ip : str, optional
        The local address every connection is made from (a loopback address of its own per
        simulated worker, e.g. ``127.0.3.7``, so the platform's per-IP limits see a crowd of
        addresses, as from real workers, instead of one).
    """

    def __init__(self, *, base_url: str, study: str, behind_proxy: bool = False,
                 retry_seconds: float = 60.0, timeout: float = 30.0,
                 traffic: Traffic | None = None, source_ip: str | None = None) -> None:  # fmt: skip
        import requests

        self.base = base_url.rstrip("/")
        self.study = study
        self.session = requests.Session()
        if source_ip is not None:
            adapter = _source_address_adapter(source_ip)
            self.session.mount("http://", adapter)
            self.session.mount("https://", adapter)
        self.retry_seconds, self.timeout = retry_seconds, timeout
        self.traffic = traffic or Traffic()
        self.csrf = ""
        self.retried_last = False
        self.headers: dict[str, str] = {}
        if behind_proxy:
            host = urlsplit(self.base).netloc
            self.headers = {"X-Forwarded-Proto": "https", "Origin": f"https://{host}"}
            self.session.headers["X-Forwarded-Proto"] = "https"
        self._errors = (requests.ConnectionError, requests.Timeout)

    def _send(self, method: str, endpoint: str, url: str, **kwargs):
        """One request, retried on connection errors and 5xx for at most ``retry_seconds``;
        the last response, or None when the budget ran out on connection errors."""
        deadline = time.monotonic() + self.retry_seconds
        backoff = 0.25
        self.retried_last = False
        for _ in range(1000):
            started = time.monotonic()
            try:
                response = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except self._errors:
                self.traffic.record(method, endpoint, 0, time.monotonic() - started)
                response = None
            else:
                self.traffic.record(
                    method, endpoint, response.status_code, time.monotonic() - started
                )
                _loopback_cookies_unsecured(self.session.cookies)
                if response.status_code < 500:
                    return response
            if time.monotonic() + backoff > deadline:
                break
            self.traffic.retried()
            self.retried_last = True
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
        with self.traffic._lock:
            self.traffic.gave_up += 1
        return response

    @staticmethod
    def _json(response) -> dict | None:
        try:
            return response.json()
        except ValueError:
            return None

    def open_mturk(self, params: dict) -> tuple[int, str]:
        response = self._send("GET", "page", f"{self.base}/hit/{self.study}/", params=params)
        if response is None:
            return 0, ""
        config = hit_config(response.text)
        self.csrf = (config or {}).get("csrf", "")
        return response.status_code, response.text

    def open_lab(self, code: str) -> tuple[int, str]:
        url = f"{self.base}/lab/{self.study}/"
        page = self._send("GET", "lab", url)
        if page is None:
            return 0, ""
        token = self.session.cookies.get("csrftoken", "")
        response = self._send(
            "POST", "lab", url, data={"code": code, "csrfmiddlewaretoken": token},
            headers={**self.headers, "Referer": url.replace("http://", "https://")
                     if self.headers else url}, allow_redirects=True,
        )  # fmt: skip
        if response is None:
            return 0, ""
        self.csrf = (hit_config(response.text) or {}).get("csrf", "")
        return (302 if self.csrf else response.status_code), response.text

    def get_json(self, endpoint: str) -> tuple[int, dict | None]:
        url = f"{self.base}/hit/{self.study}/api/{endpoint}"
        response = self._send("GET", endpoint, url)
        return (0, None) if response is None else (response.status_code, self._json(response))

    def post_json(self, endpoint: str, body: dict) -> tuple[int, dict | None]:
        url = f"{self.base}/hit/{self.study}/api/{endpoint}"
        headers = {**self.headers, "X-CSRFToken": self.csrf, "Content-Type": "application/json"}
        response = self._send("POST", endpoint, url, data=json.dumps(body), headers=headers)
        return (0, None) if response is None else (response.status_code, self._json(response))

    def get_bytes(self, path: str) -> tuple[int, int]:
        """GET ``path`` under the study's HIT (an image); ``(status, bytes read)``."""
        response = self._send("GET", "image", f"{self.base}/hit/{self.study}/{path}")
        return (0, 0) if response is None else (response.status_code, len(response.content))


class WsgiTransport:
    """The same requests handed to the project's WSGI application in this thread (no socket).

    Cookies are kept per transport; ``host`` must be one of ``ALLOWED_HOSTS``.
    """

    def __init__(self, *, study: str, host: str, traffic: Traffic | None = None) -> None:
        self.study, self.host = study, host
        self.cookies: dict[str, str] = {}
        self.csrf = ""
        self.traffic = traffic or Traffic()

    def _call(self, method: str, endpoint: str, path: str, *, query: str = "",
              body: bytes = b"", content_type: str = "", headers: dict | None = None):  # fmt: skip
        from django.core import signals
        from django.core.handlers.wsgi import WSGIHandler
        from django.db import close_old_connections

        environ = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
            "SERVER_NAME": self.host, "SERVER_PORT": "80", "HTTP_HOST": self.host,
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
            "wsgi.errors": io.StringIO(), "wsgi.version": (1, 0), "wsgi.multithread": False,
            "wsgi.multiprocess": False, "wsgi.run_once": False, "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": content_type,
            "HTTP_COOKIE": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
        }  # fmt: skip
        for key, value in (headers or {}).items():
            environ["HTTP_" + key.upper().replace("-", "_")] = value
        status_line: list[str] = []
        response_headers: list[tuple[str, str]] = []

        def start_response(status: str, hdrs: list, exc_info=None) -> Callable:
            status_line.append(status)
            response_headers.extend(hdrs)
            return lambda data: None

        # As any in-process caller must: a request's end must not close the caller's connection
        # (it may be inside a transaction).
        signals.request_started.disconnect(close_old_connections)
        signals.request_finished.disconnect(close_old_connections)
        started = time.monotonic()
        try:
            result = WSGIHandler()(environ, start_response)
            content = b"".join(result)
            if hasattr(result, "close"):
                result.close()
        finally:
            signals.request_started.connect(close_old_connections)
            signals.request_finished.connect(close_old_connections)
        status = int(status_line[0].split()[0])
        self.traffic.record(method, endpoint, status, time.monotonic() - started)
        for name, value in response_headers:
            if name.lower() == "set-cookie":
                for morsel in SimpleCookie(value).values():
                    self.cookies[morsel.key] = morsel.value
        location = next((v for k, v in response_headers if k.lower() == "location"), None)
        return status, content, location

    def open_mturk(self, params: dict) -> tuple[int, str]:
        status, content, _ = self._call(
            "GET", "page", f"/hit/{self.study}/", query=urlencode(params)
        )
        text = content.decode()
        self.csrf = (hit_config(text) or {}).get("csrf", "")
        return status, text

    def open_lab(self, code: str) -> tuple[int, str]:
        self._call("GET", "lab", f"/lab/{self.study}/")
        body = urlencode({"code": code, "csrfmiddlewaretoken": self.cookies.get("csrftoken", "")})
        status, content, location = self._call(
            "POST", "lab", f"/lab/{self.study}/", body=body.encode(),
            content_type="application/x-www-form-urlencoded",
        )  # fmt: skip
        if status == 302 and location:
            _, page, _ = self._call("GET", "lab", urlsplit(location).path)
            self.csrf = (hit_config(page.decode()) or {}).get("csrf", "")
        return status, content.decode()

    def get_json(self, endpoint: str) -> tuple[int, dict | None]:
        status, content, _ = self._call("GET", endpoint, f"/hit/{self.study}/api/{endpoint}")
        return status, _loads(content)

    def post_json(self, endpoint: str, body: dict) -> tuple[int, dict | None]:
        status, content, _ = self._call(
            "POST", endpoint, f"/hit/{self.study}/api/{endpoint}",
            body=json.dumps(body).encode(), content_type="application/json",
            headers={"X-CSRFToken": self.csrf},
        )  # fmt: skip
        return status, _loads(content)


def _loads(content: bytes) -> dict | None:
    try:
        return json.loads(content)
    except ValueError:
        return None
