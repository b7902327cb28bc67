"""How the worker's JSON API (``apis_hit``) knows who asks, reads a body and answers a refusal.

A worker is not a Django user: the browser's session is bound to one assignment per study when
the HIT opens (``selectors.hit_sessions``). :class:`HitSessionAuthentication` resolves that
assignment for the study in the URL into ``request.auth`` and enforces CSRF as DRF's
``SessionAuthentication`` does (the page sends ``X-CSRFToken``); :class:`HoldsHitAssignment`
answers 403 without one, :class:`NamesOwnAssignment` 403 for a body about another assignment.
:class:`HitJsonParser` bounds the body (``HIT_MAX_BODY_BYTES``, 413) and wants one JSON object.
:func:`hit_exception_handler` is the one place where a refusal becomes ``{"error": message}``
with its status; :class:`HitApi` wires all of it, never caches, and may be framed by MTurk.
"""

from __future__ import annotations

import math

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import Http404
from django.utils.cache import add_never_cache_headers
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from .errors import HitRefused
from .models import Assignment
from .selectors.hit_sessions import session_assignment
from .selectors.hit_state import assignment_state
from .throttles import HitClientThrottle, HitStudyThrottle

NO_HIT = "no HIT of this study is open in this browser"


class HitSessionAuthentication(SessionAuthentication):
    """``request.auth`` = the assignment of the URL's study this browser's session holds.

    ``request.user`` stays anonymous. Without such an assignment the request is not
    authenticated (``HoldsHitAssignment`` then answers 403); with one, an unsafe method
    without a valid CSRF token is refused (403), as DRF's ``SessionAuthentication`` does. That
    check reads the parsed body, so a malformed or oversized body is answered (400/413) before
    a missing token; either way nothing is written.
    """

    def authenticate(self, request):
        slug = request.parser_context["kwargs"].get("study", "")
        assignment = session_assignment(session=request._request.session, study_slug=slug)
        if assignment is None:
            return None
        self.enforce_csrf(request)
        return AnonymousUser(), assignment


class HitSessionScheme(OpenApiAuthenticationExtension):
    """The worker's session cookie, as the OpenAPI schema names it."""

    target_class = HitSessionAuthentication
    name = "hitSession"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.SESSION_COOKIE_NAME,
            "description": "The session the HIT page opened; unsafe methods need X-CSRFToken.",
        }


class HoldsHitAssignment(BasePermission):
    """The session holds an assignment of the URL's study."""

    message = NO_HIT

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, Assignment)


class NamesOwnAssignment(BasePermission):
    """An unsafe request's body names (``"assignment": <id>``) the assignment the session
    holds: the page always says which HIT it acts for, and a stale tab of another HIT is
    refused rather than applied to this one."""

    message = "that is not this browser's assignment"

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        named = request.data.get("assignment")
        return type(named) is int and named == request.auth.pk


class HitJsonParser(JSONParser):
    """The body as one JSON object, whatever its declared content type (the page sends
    ``application/json``; anything else that is not JSON is a 400, as before).

    Raises :class:`HitRefused` (413) for a ``Content-Length`` over ``HIT_MAX_BODY_BYTES``,
    before reading it, and ``ParseError`` (400) for a body that is not JSON or not an object.
    """

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        limit = settings.HIT_MAX_BODY_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0) if request else 0
        except ValueError:
            length = 0  # DRF reads no body for a malformed length either
        if length > limit:
            raise HitRefused(f"body over {limit} bytes", status=413)
        try:
            body = super().parse(stream, "application/json", parser_context)
        except exceptions.ParseError as exc:
            raise exceptions.ParseError(f"the body is not JSON ({exc.detail})") from None
        except RecursionError:
            raise exceptions.ParseError("the body is not JSON we read: nested too deeply") from None
        if not isinstance(body, dict):
            raise exceptions.ParseError("the body must be a JSON object")
        return body


def _messages(detail, prefix: str = "") -> list[str]:
    """DRF error detail flattened to ``"field: message"`` sentences (nested fields dotted)."""
    if isinstance(detail, dict):
        found = []
        for key, value in detail.items():
            name = "" if key == "non_field_errors" else f"{prefix}{key}"
            found += _messages(value, f"{name}." if name else "")
        return found
    if isinstance(detail, list):
        return [message for item in detail for message in _messages(item, prefix)]
    field = prefix.rstrip(".")
    return [f"{field}: {detail}" if field else str(detail)]


def hit_exception_handler(exc, context) -> Response | None:
    """The worker API's one mapping from a refusal to ``{"error": message}`` and a status.

    :class:`HitRefused` keeps its status; serializer errors are 400 naming each field; DRF's
    own refusals (bad JSON, CSRF, wrong method, throttling) keep theirs; ``Http404`` is 404.
    Anything else returns None, so DRF re-raises it (a 500, logged).
    """
    headers = {}
    if isinstance(exc, HitRefused):
        status, message = exc.status, str(exc)
    elif isinstance(exc, Http404):
        status, message = 404, str(exc) or "not found"
    elif isinstance(exc, exceptions.APIException):
        status, message = exc.status_code, "; ".join(_messages(exc.detail))
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(math.ceil(exc.wait))
    else:
        return None
    return Response({"error": message}, status=status, headers=headers)


class HitInputSerializer(serializers.Serializer):
    """Every POST of the page names the assignment it acts for (checked by
    :class:`NamesOwnAssignment`). Keys a serializer does not declare are ignored, as the
    page adds ``id`` and ``time`` to every request."""

    assignment = serializers.IntegerField(help_text="The assignment this browser holds.")


class StrictIntegerField(serializers.IntegerField):
    """An integer as JSON writes it: refuses strings ("3"), floats and booleans, which DRF's
    ``IntegerField`` would coerce."""

    def to_internal_value(self, data):
        if type(data) is not int:
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A JSON string: refuses numbers, lists and objects, which DRF's ``CharField`` would
    turn into their text."""

    default_error_messages = {"not_a_string": "must be a string, not {kind}."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string", kind=type(data).__name__)
        return super().to_internal_value(data)


class HitApi(APIView):
    """Base of the worker's JSON endpoints (URL keyword ``study``, the study's slug)."""

    authentication_classes = [HitSessionAuthentication]
    permission_classes = [HoldsHitAssignment, NamesOwnAssignment]
    throttle_classes = [HitClientThrottle, HitStudyThrottle]
    parser_classes = [HitJsonParser]
    renderer_classes = [JSONRenderer]

    def get_exception_handler(self):
        return hit_exception_handler

    def permission_denied(self, request, message=None, code=None):
        # DRF would answer "credentials were not provided"; the worker needs to know why.
        raise HitRefused(message or NO_HIT, status=403)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if "Cache-Control" not in response:
            add_never_cache_headers(response)
        response.xframe_options_exempt = True  # the page itself is framed by MTurk
        return response

    @property
    def assignment(self) -> Assignment:
        """The assignment this browser holds (set by authentication)."""
        return self.request.auth

    def validated(self, serializer_class: type[serializers.Serializer]) -> dict:
        """The request body checked by ``serializer_class`` (400 naming each bad field)."""
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def state(self, **extra) -> Response:
        """``{**extra, "state": assignment_state}``: every answer carries the new state."""
        return Response({**extra, "state": assignment_state(assignment=self.assignment)})
