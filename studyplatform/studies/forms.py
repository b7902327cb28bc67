"""Parsing of what a worker's browser sends to open a HIT: MTurk's ExternalQuestion parameters
and a lab participant's code. Errors name the parameter and what is wrong with it."""

from __future__ import annotations

from urllib.parse import urlsplit

from django import forms
from django.conf import settings

PREVIEW_ASSIGNMENT_ID = "ASSIGNMENT_ID_NOT_AVAILABLE"
_MTURK_ID = r"^[A-Za-z0-9]{1,64}$"


_C0_AND_SPACE = "".join(chr(c) for c in range(0x21))
_SPECIAL_SCHEMES = ("http", "https", "ws", "wss", "ftp", "file")


def url_as_browsers_read(url: str) -> str:
    """``url`` rewritten the way a browser's URL parser (the WHATWG URL standard) reads it
    before it finds the host: leading and trailing C0 controls and spaces stripped, every tab
    and newline removed, and for a special scheme (http, https, ...) every ``\\`` read as
    ``/``. Python's ``urlsplit`` does none of this, so ``https://evil.example\\.mturk.com``
    is host ``evil.example\\.mturk.com`` to it but host ``evil.example`` to Chromium."""
    url = url.strip(_C0_AND_SPACE)
    url = url.replace("\t", "").replace("\n", "").replace("\r", "")
    scheme, colon, rest = url.partition(":")
    if colon and scheme.lower() in _SPECIAL_SCHEMES:
        url = scheme + ":" + rest.replace("\\", "/")
    return url


def submit_origin_allowed(url: str) -> bool:
    """True for ``https://<host>.mturk.com`` (no path, query, port or credentials) or an origin
    listed exactly in ``settings.HIT_EXTRA_SUBMIT_ORIGINS``, the URL read as a browser reads it
    (:func:`url_as_browsers_read`); anything a browser would read differently from Python
    (a backslash, a control character, an ``@``) is refused outright."""
    if url != url_as_browsers_read(url) or "@" in url or "%" in url:
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return False
    origin = f"{parts.scheme}://{parts.netloc}"
    if origin in settings.HIT_EXTRA_SUBMIT_ORIGINS:
        return True
    host = (parts.hostname or "").lower()
    return (
        parts.scheme == "https"
        and port is None
        and (host == "mturk.com" or host.endswith(".mturk.com"))
    )


class MturkParamsForm(forms.Form):
    """The query string MTurk appends to an ExternalQuestion URL for an accepted HIT."""

    assignmentId = forms.RegexField(regex=_MTURK_ID, max_length=64)
    hitId = forms.RegexField(regex=_MTURK_ID, max_length=64)
    workerId = forms.RegexField(regex=_MTURK_ID, max_length=64)
    turkSubmitTo = forms.CharField(max_length=200)

    def clean_assignmentId(self) -> str:
        value = self.cleaned_data["assignmentId"]
        if value == PREVIEW_ASSIGNMENT_ID:
            raise forms.ValidationError("is the preview marker, not an assignment")
        return value

    def clean_turkSubmitTo(self) -> str:
        value = self.cleaned_data["turkSubmitTo"]
        if not submit_origin_allowed(value):
            raise forms.ValidationError(
                f"{value!r} is not an MTurk submit host (https://...mturk.com) "
                "nor an allowed local endpoint"
            )
        return value.rstrip("/")

    def problems(self) -> list[str]:
        """One sentence per bad or missing parameter, for the explanatory page."""
        return [
            f"{name}: {' '.join(str(m).rstrip('.') for m in messages)}"
            for name, messages in self.errors.items()
        ]


class LabCodeForm(forms.Form):
    """A lab participant's code, as handed out by the researcher."""

    code = forms.RegexField(
        regex=r"^[A-Za-z0-9_-]{1,64}$",
        max_length=64,
        error_messages={"invalid": "use 1-64 letters, digits, '-' or '_'"},
    )
