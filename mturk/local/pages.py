"""The worker's side of the local endpoint: pick a simulated worker, see the HITs, preview,
accept, work inside the ExternalQuestion frame, submit. Every value is HTML-escaped.

The frame gets MTurk's parameters: ``assignmentId`` (``ASSIGNMENT_ID_NOT_AVAILABLE`` in
preview), ``hitId``, ``workerId`` and ``turkSubmitTo`` (this server), so the platform's final
form posts to ``{turkSubmitTo}/mturk/externalSubmit`` here.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html import escape
from urllib.parse import quote, urlencode

from mturk.local.store import ApiError, Store

PREVIEW_ASSIGNMENT_ID = "ASSIGNMENT_ID_NOT_AVAILABLE"
_WORKER = r"(?P<worker>A[A-Z0-9]+)"
_ID = r"[A-Z0-9]+"


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)} - local MTurk</title>"
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .6em}iframe{width:100%;border:1px solid #888}"
        ".refused{color:#a00}</style></head><body>"
        f"<p><a href='/worker/'>local MTurk: workers</a></p><h1>{escape(title)}</h1>{body}"
        "</body></html>"
    )


def error_page(message: str) -> str:
    return _page("Refused", f"<p class='refused' id='error'>{escape(message)}</p>")


def external_question(question: str) -> tuple[str, int]:
    """(ExternalURL, FrameHeight) of an ExternalQuestion document."""
    try:
        root = ET.fromstring(question)
    except ET.ParseError as exc:
        raise ApiError(f"The HIT's question is not XML: {exc}") from None
    url = height = None
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "ExternalURL":
            url = (element.text or "").strip()
        elif tag == "FrameHeight":
            height = int((element.text or "0").strip() or 0)
    if not url:
        raise ApiError("The HIT's question has no ExternalURL.")
    if not url.startswith(("https://", "http://")):
        raise ApiError(f"The HIT's ExternalURL {url!r} is not an http(s) URL.")
    return url, height or 800


def frame_url(url: str, **params: str) -> str:
    separator = "&" if "?" in url else "?"
    return url + separator + urlencode(params)


def render_get(store: Store, path: str, base_url: str) -> tuple[int, str]:
    if path in {"/worker", "/worker/"}:
        return 200, _workers(store)
    match = re.fullmatch(rf"/worker/{_WORKER}/", path)
    if match:
        return 200, _hit_list(store, match["worker"])
    match = re.fullmatch(rf"/worker/{_WORKER}/hits/(?P<hit>{_ID})/", path)
    if match:
        return 200, _preview(store, match["worker"], match["hit"])
    match = re.fullmatch(rf"/worker/{_WORKER}/assignments/(?P<assignment>{_ID})/", path)
    if match:
        return 200, _work(store, match["worker"], match["assignment"], base_url)
    return 404, _page("Not found", f"<p>No page at {escape(path)}.</p>")


def render_post(store: Store, path: str, form: dict, base_url: str):
    match = re.fullmatch(rf"/worker/{_WORKER}/hits/(?P<hit>{_ID})/accept", path)
    if match:
        assignment = store.assignment_accept(worker_id=match["worker"], hit_id=match["hit"])
        return "redirect", f"/worker/{match['worker']}/assignments/{assignment['AssignmentId']}/"
    match = re.fullmatch(rf"/worker/{_WORKER}/assignments/(?P<assignment>{_ID})/return", path)
    if match:
        store.assignment_return(assignment_id=match["assignment"])
        return "redirect", f"/worker/{match['worker']}/"
    if path.rstrip("/") == "/mturk/externalSubmit":
        assignment_id = form.get("assignmentId", "")
        if not assignment_id or assignment_id == PREVIEW_ASSIGNMENT_ID:
            raise ApiError("The submitted form has no assignmentId; nothing was submitted.")
        answers = {k: v for k, v in form.items() if k != "assignmentId"}
        assignment = store.assignment_submit(assignment_id=assignment_id, answers=answers)
        worker = assignment["WorkerId"]
        body = (
            f"<p id='submitted'>Assignment {escape(assignment_id)} submitted.</p>"
            f"<p><a target='_top' href='/worker/{quote(worker)}/'>Back to the HITs</a></p>"
        )
        return 200, _page("Submitted", body)
    return 404, _page("Not found", f"<p>No page at {escape(path)}.</p>")


def _workers(store: Store) -> str:
    rows = "".join(
        f"<tr><td><a href='/worker/{quote(w['id'])}/'>{escape(w['id'])}</a></td>"
        f"<td>{escape(w['country'])}</td><td>{w['approved_count']}</td>"
        f"<td>{w['approval_rate']}%</td><td>{'yes' if w['masters'] else 'no'}</td></tr>"
        for w in store.workers()
    )
    if not rows:
        return _page(
            "Simulated workers",
            "<p>No simulated workers yet: POST /_control/workers "
            '{"worker_id": "AWORKER1", "country": "US"}.</p>',
        )
    return _page(
        "Simulated workers",
        "<table><tr><th>worker</th><th>locale</th><th>approved HITs</th><th>approval rate</th>"
        f"<th>Masters</th></tr>{rows}</table>",
    )


def _hit_list(store: Store, worker_id: str) -> str:
    hits = store.hits_for_worker(worker_id)
    rows = "".join(
        f"<tr><td><a class='hit' href='/worker/{quote(worker_id)}/hits/{quote(h['HITId'])}/'>"
        f"{escape(h['Title'])}</a></td><td>${escape(h['Reward'])}</td>"
        f"<td>{h['NumberOfAssignmentsAvailable']}</td>"
        f"<td class='refused'>{escape(h['reason'])}</td></tr>"
        for h in hits
    )
    return _page(
        f"HITs for {worker_id}",
        f"<table><tr><th>HIT</th><th>reward</th><th>available</th><th>note</th></tr>{rows}</table>"
        if rows
        else "<p>No HITs available.</p>",
    )


def _preview(store: Store, worker_id: str, hit_id: str) -> str:
    hit = store.hit_preview(worker_id=worker_id, hit_id=hit_id)
    url, height = external_question(hit["Question"])
    src = frame_url(url, assignmentId=PREVIEW_ASSIGNMENT_ID, hitId=hit_id)
    if hit["reason"]:
        action = f"<p class='refused' id='refused'>You cannot accept: {escape(hit['reason'])}.</p>"
    else:
        action = (
            f"<form method='post' action='/worker/{quote(worker_id)}/hits/{quote(hit_id)}/accept'>"
            "<button type='submit' id='accept'>Accept</button></form>"
        )
    return _page(
        f"Preview: {hit['Title']}",
        f"<p>{escape(hit['Description'])}</p><p>Reward ${escape(hit['Reward'])}</p>{action}"
        f"<iframe id='question' src='{escape(src)}' height='{height}'></iframe>",
    )


def _work(store: Store, worker_id: str, assignment_id: str, base_url: str) -> str:
    assignment = store.assignment_get_local(assignment_id)
    if assignment["WorkerId"] != worker_id:
        raise ApiError(f"Assignment {assignment_id} is not {worker_id}'s.")
    if assignment["AssignmentStatus"] != "Accepted":
        return _page(
            "Assignment",
            f"<p id='status'>Assignment {escape(assignment_id)} is "
            f"{escape(assignment['AssignmentStatus'])}.</p>",
        )
    hit = store.hit_get(assignment["HITId"])
    url, height = external_question(hit["Question"])
    src = frame_url(
        url,
        assignmentId=assignment_id,
        hitId=assignment["HITId"],
        workerId=worker_id,
        turkSubmitTo=base_url,
    )
    return _page(
        hit["Title"],
        f"<form method='post' action='/worker/{quote(worker_id)}/assignments/"
        f"{quote(assignment_id)}/return'><button type='submit' id='return'>Return HIT</button>"
        f"</form><iframe id='question' src='{escape(src)}' height='{height}'></iframe>",
    )
