"""The worker's HIT pages: the MTurk ExternalQuestion entry and lab mode.

Opening a HIT binds the browser session to one assignment per study
(``session["hit_assignment:<slug>"]``, ``selectors.hit_sessions``) and serves the page
(``static/studies/hit.js``), which then talks to the JSON endpoints of ``apis_hit``.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_GET, require_http_methods

from .errors import HitRefused
from .forms import PREVIEW_ASSIGNMENT_ID, LabCodeForm, MturkParamsForm
from .models import Assignment, Study
from .selectors.hit_sessions import session_assignment, session_key
from .services.hit_open import hit_assignment_open, lab_code_check
from .services.limits import client_ip, hit_open_allowed

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


def _too_many(request, study: Study) -> HttpResponse | None:
    """A 429 page when this client or this study has opened too many HITs lately."""
    if hit_open_allowed(study_slug=study.slug, ip=client_ip(request.META)):
        return None
    problems = ["Too many HITs were opened from here or of this study in the last minutes."]
    response = _problem(request, "Please wait a few minutes", problems, 429)
    response["Retry-After"] = "600"
    return response


def _bind(request, study: Study, assignment: Assignment) -> None:
    """Bind the browser session to ``assignment``; a new binding gets a new session key, so a
    session id planted or seen before the binding does not reach the assignment."""
    key = session_key(study.slug)
    if request.session.get(key) != assignment.pk:
        request.session.cycle_key()
        request.session[key] = assignment.pk


def _app(request, study: Study, assignment: Assignment) -> HttpResponse:
    _bind(request, study, assignment)
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
    if request.session.get(session_key(found.slug)) is None and (busy := _too_many(request, found)):
        return busy
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
    try:
        lab_code_check(study=found)
    except HitRefused as refused:
        return _problem(request, "This study cannot be opened", [str(refused)], refused.status)
    held = session_assignment(session=request.session, study_slug=found.slug, source="lab")
    if request.method == "GET":
        if held is not None:
            return _app(request, found, held)
        return render(request, "studies/hit/lab.html", {"study": found, "form": LabCodeForm()})
    if busy := _too_many(request, found):
        return busy
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
    _bind(request, found, assignment)
    return redirect("hit:lab", study=found.slug)
