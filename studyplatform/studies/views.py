"""The worker's HIT pages and their JSON endpoints.

HIT views are thin: parse, call one service, serialise. The page (``static/studies/
hit.js``) renders what ``GET api/state`` says; every POST returns the new state. A browser
session is bound to one assignment per study (``session["hit_assignment:<slug>"]``), and
every JSON endpoint answers 403 for a request about any other assignment.
"""

from __future__ import annotations

import functools
import json

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from retrieval.services import image_thumbnail

from .forms import PREVIEW_ASSIGNMENT_ID, LabCodeForm, MturkParamsForm
from .models import Assignment, SearchTask, Study
from .services.events import CLIENT_TYPES, HitRefused, event_record, shown_image_ids
from .services.hit import search_task_begin, search_task_end, search_task_refine
from .services.hit_open import hit_assignment_open
from .services.hit_overlays import overlay_keys
from .services.hit_responses import assignment_submit, questionnaire_submit
from .services.hit_state import assignment_state, image_allowed, tutorial_complete
from .services.rounds import search_round_retry


def session_key(slug: str) -> str:
    """Session key of the assignment a browser holds in study ``slug`` (one per study, so HITs
    of two studies open side by side do not displace each other)."""
    return f"hit_assignment:{slug}"


# --- worker pages -------------------------------------------------------------------------------


def framed(view):
    """A page MTurk may frame: no X-Frame-Options, CSP frame-ancestors instead; never cached."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        ancestors = " ".join(["'self'", *settings.HIT_FRAME_ANCESTORS])
        response["Content-Security-Policy"] = f"frame-ancestors {ancestors}"
        return response

    return xframe_options_exempt(never_cache(wrapper))


def _problem(request, title: str, problems: list[str], status: int) -> HttpResponse:
    context = {"title": title, "problems": problems}
    return render(request, "studies/hit/problem.html", context, status=status)


def _app(request, study: Study, assignment: Assignment) -> HttpResponse:
    request.session[session_key(study.slug)] = assignment.pk
    config = {
        "assignment": assignment.pk,
        "base": reverse("hit:page", kwargs={"study": study.slug}),
        "csrf": get_token(request),
    }
    return render(request, "studies/hit/app.html", {"study": study, "config": config})


@framed
@require_GET
def hit(request: HttpRequest, study: str) -> HttpResponse:
    """MTurk ExternalQuestion entry: preview, or open the worker's assignment and its page."""
    found = Study.objects.filter(slug=study).first()
    if found is None:
        return _problem(request, "No such study", [f"There is no study {study!r}."], 404)
    if request.GET.get("assignmentId") == PREVIEW_ASSIGNMENT_ID:
        return render(request, "studies/hit/preview.html", {"study": found})
    form = MturkParamsForm(request.GET)
    if not form.is_valid():
        return _problem(request, "This link is incomplete", form.problems(), 400)
    params = form.cleaned_data
    try:
        assignment = hit_assignment_open(
            study=found,
            source="mturk",
            external_id=params["workerId"],
            mturk_assignment_id=params["assignmentId"],
            hit_id=params["hitId"],
            turk_submit_to=params["turkSubmitTo"],
        )
    except HitRefused as refused:
        return _problem(request, "This HIT cannot be opened", [str(refused)], refused.status)
    return _app(request, found, assignment)


@framed
@require_http_methods(["GET", "POST"])
def lab(request: HttpRequest, study: str) -> HttpResponse:
    """Lab mode: a participant code instead of MTurk; a completion code at the end."""
    found = Study.objects.filter(slug=study).first()
    if found is None:
        return _problem(request, "No such study", [f"There is no study {study!r}."], 404)
    held = Assignment.objects.filter(
        pk=request.session.get(session_key(found.slug)), study=found, participant__source="lab"
    ).first()
    if request.method == "GET":
        if held is not None:
            return _app(request, found, held)
        return render(request, "studies/hit/lab.html", {"study": found, "form": LabCodeForm()})
    form = LabCodeForm(request.POST)
    if not form.is_valid():
        context = {"study": found, "form": form}
        return render(request, "studies/hit/lab.html", context, status=400)
    try:
        assignment = hit_assignment_open(
            study=found, source="lab", external_id=form.cleaned_data["code"]
        )
    except HitRefused as refused:
        return _problem(request, "This study cannot be opened", [str(refused)], refused.status)
    request.session[session_key(found.slug)] = assignment.pk
    return redirect("hit:lab", study=found.slug)


# --- JSON endpoints -------------------------------------------------------------------------------


def worker_api(view):
    """Resolve the session's assignment (403 without one, or for another study or assignment),
    bound the body (413), parse JSON (400), and turn ``HitRefused`` into ``{"error": ...}``."""

    @functools.wraps(view)
    def wrapper(request, study: str, **kwargs):
        assignment = Assignment.objects.filter(
            pk=request.session.get(session_key(study)), study__slug=study
        ).first()
        if assignment is None:
            return JsonResponse(
                {"error": "no HIT of this study is open in this browser"}, status=403
            )
        body: dict = {}
        if request.method == "POST":
            length = int(request.META.get("CONTENT_LENGTH") or 0)
            if length > settings.HIT_MAX_BODY_BYTES:
                limit = settings.HIT_MAX_BODY_BYTES
                return JsonResponse({"error": f"body over {limit} bytes"}, status=413)
            try:
                body = json.loads(request.body or b"{}")
            except (ValueError, UnicodeDecodeError):
                return JsonResponse({"error": "the body is not JSON"}, status=400)
            if not isinstance(body, dict):
                return JsonResponse({"error": "the body must be a JSON object"}, status=400)
            if body.get("assignment") != assignment.pk:
                return JsonResponse({"error": "that is not this browser's assignment"}, status=403)
        try:
            extra = view(request, assignment, body, **kwargs)
        except HitRefused as refused:
            return JsonResponse({"error": str(refused)}, status=refused.status)
        if isinstance(extra, HttpResponseBase):
            return extra  # an image: cacheable by the worker's browser
        response = JsonResponse({**(extra or {}), "state": assignment_state(assignment=assignment)})
        add_never_cache_headers(response)
        return response

    return xframe_options_exempt(wrapper)


def _task(assignment: Assignment, body: dict) -> SearchTask | None:
    task_id = body.get("task")
    if task_id is None:
        return None
    if not isinstance(task_id, int) or isinstance(task_id, bool):
        raise HitRefused("task must be an integer id")
    task = SearchTask.objects.filter(pk=task_id).select_related("assignment").first()
    if task is None or task.assignment_id != assignment.pk:
        raise HitRefused("that task is not one of this assignment's", status=403)
    return task


def _required_task(assignment: Assignment, body: dict) -> SearchTask:
    task = _task(assignment, body)
    if task is None:
        raise HitRefused("task is missing")
    return task


@require_GET
@worker_api
def api_state(request, assignment, body):
    return {}


@require_POST
@worker_api
def api_event(request, assignment, body):
    kind = body.get("type")
    if kind not in CLIENT_TYPES:
        raise HitRefused(f"event type {kind!r} cannot be sent by the page")
    image = body.get("image")
    if image is not None and (not isinstance(image, int) or isinstance(image, bool)):
        raise HitRefused("image must be an integer id")
    iqr_round = body.get("round")
    if iqr_round is not None and (not isinstance(iqr_round, int) or not 0 <= iqr_round < 100):
        raise HitRefused("round must be an integer 0-99")
    _, created = event_record(
        assignment=assignment,
        client_event_id=body.get("id"),
        type=kind,
        task=_task(assignment, body),
        image_id=image,
        iqr_round=iqr_round,
        client_time=body.get("time"),
        payload=body.get("payload"),
    )
    return {"created": created}


@require_POST
@worker_api
def api_begin(request, assignment, body):
    search_task_begin(task=_required_task(assignment, body))


@require_POST
@worker_api
def api_refine(request, assignment, body):
    search_task_refine(task=_required_task(assignment, body), client_event_id=body.get("id"))


@require_POST
@worker_api
def api_refine_retry(request, assignment, body):
    search_round_retry(task=_required_task(assignment, body))


@require_POST
@worker_api
def api_finish(request, assignment, body):
    search_task_end(task=_required_task(assignment, body), reason="rounds_spent")


@require_POST
@worker_api
def api_answers(request, assignment, body):
    questionnaire_submit(
        assignment=assignment,
        task=_task(assignment, body),
        answers=body.get("answers"),
        client_event_id=body.get("id"),
    )


@require_POST
@worker_api
def api_tutorial(request, assignment, body):
    tutorial_complete(assignment=assignment)


@require_POST
@worker_api
def api_submit(request, assignment, body):
    assignment_submit(assignment=assignment)


@require_GET
@worker_api
def api_image(request, assignment, body, image_id: int):
    """An image this assignment may see (its thumbnail), or with ``?overlay=<task>`` its
    saliency overlay for that task; 404 for anything else or a missing overlay."""
    overlay_task = request.GET.get("overlay")
    if overlay_task:
        task = _task(assignment, {"task": int(overlay_task) if overlay_task.isdigit() else -1})
        key = overlay_keys(task=task, image_ids=[image_id]).get(image_id)
        if key is None or image_id not in shown_image_ids(task=task):
            raise Http404("no overlay")
        response = FileResponse(default_storage.open(key, "rb"), content_type="image/png")
    else:
        from retrieval.models import Image

        image = Image.objects.filter(pk=image_id).select_related("directory").first()
        if image is None or not image_allowed(assignment=assignment, image_id=image_id):
            raise Http404("no such image in this HIT")
        try:
            key = image_thumbnail(image=image, size=settings.HIT_IMAGE_SIZE)
        except FileNotFoundError:
            raise Http404("image file missing") from None
        response = FileResponse(default_storage.open(key, "rb"), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=3600"
    return response
