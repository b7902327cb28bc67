"""The worker's JSON API: what the HIT page (``static/studies/hit.js``) calls.

One class per operation under ``hit/<study>/``: parse the body with its input serializer, call
one service (the event endpoint also ends the task when a judgement reaches the target), and
answer ``{..., "state": <what the page renders next>}``. Who may ask, the body limit and every
refusal's answer (``{"error": message}`` with its status) live in :mod:`.hit_api`.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation

from retrieval.services import image_thumbnail

from .errors import HitRefused
from .hit_api import HitApi, HitInputSerializer, StrictCharField, StrictIntegerField
from .models import SearchTask
from .selectors.events import MARK_TYPES
from .selectors.hit_images import hit_image_get, hit_overlay_key
from .selectors.search_tasks import search_task_of_assignment
from .services.events import CLIENT_TYPES, event_record
from .services.hit import (
    search_task_begin,
    search_task_end,
    search_task_finish,
    search_task_refine,
)
from .services.hit_responses import assignment_submit, questionnaire_submit
from .services.judgements import judgement_record
from .services.rounds import search_round_retry
from .services.tutorials import tutorial_complete

_STATE = inline_serializer("HitState", {"state": serializers.JSONField()})


def _task_field(**kwargs) -> StrictIntegerField:
    return StrictIntegerField(min_value=1, help_text="A search task of this assignment.", **kwargs)


def _client_event_id(**kwargs) -> StrictCharField:
    return StrictCharField(
        trim_whitespace=False,
        help_text="The page's id of this action; sent again, it changes nothing.",
        **kwargs,
    )


class HitTaskInputSerializer(HitInputSerializer):
    task = _task_field()


class HitStateApi(HitApi):
    """What the page shows now."""

    @extend_schema(responses=_STATE)
    def get(self, request, study: str):
        return self.state()


class HitEventApi(HitApi):
    """One action of the worker (``events.CLIENT_TYPES``); ``created`` is False for a resend.

    A judgement that brings the task's relevant images to the target count ends the task.
    """

    class HitEventInputSerializer(HitInputSerializer):
        id = _client_event_id()
        type = serializers.ChoiceField(
            choices=sorted(CLIENT_TYPES),
            error_messages={"invalid_choice": "event type {input!r} cannot be sent by the page"},
        )
        task = _task_field(required=False, allow_null=True)
        image = StrictIntegerField(required=False, allow_null=True, min_value=1)
        round = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=99)
        time = StrictCharField(required=False, allow_null=True, allow_blank=True)
        payload = serializers.DictField(required=False, allow_null=True)

    @extend_schema(
        request={"application/json": HitEventInputSerializer},
        responses=inline_serializer(
            "HitEvent", {"created": serializers.BooleanField(), "state": serializers.JSONField()}
        ),
    )
    def post(self, request, study: str):
        data = self.validated(self.HitEventInputSerializer)
        task = None
        if data.get("task") is not None:
            task = search_task_of_assignment(assignment=self.assignment, task_id=data["task"])
        event = {
            "assignment": self.assignment,
            "client_event_id": data["id"],
            "type": data["type"],
            "task": task,
            "image_id": data.get("image"),
            "iqr_round": data.get("round"),
            "client_time": data.get("time"),
            "payload": data.get("payload"),
        }
        if data["type"] not in MARK_TYPES:
            _, created = event_record(**event)
            return self.state(created=created)
        judgement = judgement_record(**event)
        if judgement.target_reached:
            search_task_end(task=task, reason=SearchTask.EndReason.TARGET_REACHED)
        return self.state(created=judgement.created)


class HitBeginApi(HitApi):
    """Begin a task: round 0 of its results (idempotent)."""

    @extend_schema(request={"application/json": HitTaskInputSerializer}, responses=_STATE)
    def post(self, request, study: str):
        data = self.validated(HitTaskInputSerializer)
        task = search_task_of_assignment(assignment=self.assignment, task_id=data["task"])
        search_task_begin(task=task)
        return self.state()


class HitRefineApi(HitApi):
    """One IQR round on the worker's marks (idempotent per ``id``)."""

    class HitRefineInputSerializer(HitTaskInputSerializer):
        id = _client_event_id()

    @extend_schema(request={"application/json": HitRefineInputSerializer}, responses=_STATE)
    def post(self, request, study: str):
        data = self.validated(self.HitRefineInputSerializer)
        task = search_task_of_assignment(assignment=self.assignment, task_id=data["task"])
        search_task_refine(task=task, client_event_id=data["id"])
        return self.state()


class HitRefineRetryApi(HitApi):
    """Hand a delayed round to the gpu queue again (409 when no round of the task is waiting)."""

    @extend_schema(request={"application/json": HitTaskInputSerializer}, responses=_STATE)
    def post(self, request, study: str):
        data = self.validated(HitTaskInputSerializer)
        task = search_task_of_assignment(assignment=self.assignment, task_id=data["task"])
        search_round_retry(task=task)
        return self.state()


class HitFinishApi(HitApi):
    """The worker ends a task: by choice under ``stop: at_least``; under ``at_target`` once
    its refine rounds are spent (409 while rounds are left)."""

    @extend_schema(request={"application/json": HitTaskInputSerializer}, responses=_STATE)
    def post(self, request, study: str):
        data = self.validated(HitTaskInputSerializer)
        task = search_task_of_assignment(assignment=self.assignment, task_id=data["task"])
        search_task_finish(task=task)
        return self.state()


class HitAnswersApi(HitApi):
    """The questionnaire after a task (``task`` null or absent: the final one)."""

    class HitAnswersInputSerializer(HitInputSerializer):
        id = _client_event_id()
        task = _task_field(required=False, allow_null=True)
        answers = serializers.DictField(help_text="{question code: 1..points, or text}")

    @extend_schema(request={"application/json": HitAnswersInputSerializer}, responses=_STATE)
    def post(self, request, study: str):
        data = self.validated(self.HitAnswersInputSerializer)
        task = None
        if data.get("task") is not None:
            task = search_task_of_assignment(assignment=self.assignment, task_id=data["task"])
        questionnaire_submit(
            assignment=self.assignment,
            task=task,
            answers=data["answers"],
            client_event_id=data["id"],
        )
        return self.state()


class HitTutorialApi(HitApi):
    """The worker finished the tutorial (idempotent)."""

    @extend_schema(request={"application/json": HitInputSerializer}, responses=_STATE)
    def post(self, request, study: str):
        self.validated(HitInputSerializer)
        tutorial_complete(assignment=self.assignment)
        return self.state()


class HitSubmitApi(HitApi):
    """Submit the HIT: both tasks ended and every required question answered (409 otherwise)."""

    @extend_schema(request={"application/json": HitInputSerializer}, responses=_STATE)
    def post(self, request, study: str):
        self.validated(HitInputSerializer)
        assignment_submit(assignment=self.assignment)
        return self.state()


class _AnyAccept(BaseContentNegotiation):
    """An image answers whatever the ``<img>`` element accepts; errors are still JSON."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class HitImageApi(HitApi):
    """An image this assignment may see (its thumbnail, JPEG), or with ``?overlay=<task>`` its
    saliency overlay in that task (PNG); 404 for any other image or a missing overlay.
    Cacheable by the worker's browser for an hour."""

    content_negotiation_class = _AnyAccept

    @extend_schema(
        parameters=[OpenApiParameter("overlay", int, description="A with-XAI task's id.")],
        responses={(200, "image/jpeg"): bytes, (200, "image/png"): bytes},
    )
    def get(self, request, study: str, image_id: int):
        overlay = request.query_params.get("overlay")
        if overlay:
            if not overlay.isdigit():
                raise HitRefused(f"overlay must be a task id, not {overlay[:20]!r}")
            key = hit_overlay_key(
                assignment=self.assignment, task_id=int(overlay), image_id=image_id
            )
            response = FileResponse(default_storage.open(key, "rb"), content_type="image/png")
        else:
            image = hit_image_get(assignment=self.assignment, image_id=image_id)
            try:
                key = image_thumbnail(image=image, size=settings.HIT_IMAGE_SIZE)
            except FileNotFoundError:
                raise HitRefused("image file missing", status=404) from None
            response = FileResponse(default_storage.open(key, "rb"), content_type="image/jpeg")
        response["Cache-Control"] = "private, max-age=3600"
        return response
