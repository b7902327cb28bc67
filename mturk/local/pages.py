"""The worker's side of the local endpoint: pick a simulated worker, see the HITs (with the
requester's messages and any block), preview, accept, work inside the frame, submit; request
qualifications and take their tests. Every value is HTML-escaped, except an HTMLQuestion's
content, which is the requester's own page and is served as MTurk serves it, in its own frame.

The frame gets MTurk's parameters: ``assignmentId`` (``ASSIGNMENT_ID_NOT_AVAILABLE`` in
preview), ``hitId``, ``workerId`` and ``turkSubmitTo`` (this server), so the HIT's final form
posts to ``{turkSubmitTo}/mturk/externalSubmit`` here. An ExternalQuestion frames its URL; an
HTMLQuestion frames ``/worker/content/<hit>/`` (its HTMLContent); a QuestionForm frames the same
route, which renders it as a plain form that posts to ``/mturk/externalSubmit``.
"""

from __future__ import annotations

import re
from html import escape
from urllib.parse import quote, urlencode

from mturk.local.questions import Question, question_form_html, question_parse
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


def _bare_page(title: str, body: str) -> str:
    """A page shown inside the HIT's frame: no navigation of its own."""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>body{{font-family:sans-serif;margin:.5em}}"
        "fieldset{margin:.5em 0}</style></head><body>"
        f"{body}</body></html>"
    )


def error_page(message: str) -> str:
    return _page("Refused", f"<p class='refused' id='error'>{escape(message)}</p>")


def frame_url(url: str, **params: str) -> str:
    separator = "&" if "?" in url else "?"
    return url + separator + urlencode(params)


def _frame_src(store: Store, hit_id: str, question: Question, **params: str) -> str:
    if question.kind == "ExternalQuestion":
        return frame_url(question.url, hitId=hit_id, **params)
    return frame_url(f"/worker/content/{quote(hit_id)}/", hitId=hit_id, **params)


def _frame(src: str, question: Question) -> str:
    # Content served from this origin (HTMLQuestion, QuestionForm) gets an opaque origin, as it
    # would on MTurk's separate content host; the control API refuses its requests.
    sandbox = "" if question.kind == "ExternalQuestion" else " sandbox='allow-forms allow-scripts'"
    return (
        f"<iframe id='question' src='{escape(src)}' height='{question.frame_height}'"
        f"{sandbox}></iframe>"
    )


def render_get(store: Store, path: str, base_url: str, query: dict | None = None):
    """(status, html) of the worker page at ``path``; ``query`` holds the URL's parameters."""
    query = query or {}
    if path in {"/worker", "/worker/"}:
        return 200, _workers(store)
    match = re.fullmatch(rf"/worker/content/(?P<hit>{_ID})/", path)
    if match:
        return 200, _content(store, match["hit"], query, base_url)
    match = re.fullmatch(rf"/worker/{_WORKER}/qualifications/", path)
    if match:
        return 200, _qualifications(store, match["worker"])
    match = re.fullmatch(rf"/worker/{_WORKER}/qualifications/(?P<type>{_ID})/", path)
    if match:
        return 200, _qualification_test(store, match["worker"], match["type"])
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
    match = re.fullmatch(rf"/worker/{_WORKER}/qualifications/(?P<type>{_ID})/request", path)
    if match:
        answers = dict(form) if form else None
        outcome = store.qualification_request(
            worker_id=match["worker"], type_id=match["type"], answers=answers
        )
        return 200, _page(
            "Qualification requested",
            f"<p id='requested'>Your request is {escape(outcome['status'].lower())}.</p>"
            f"<p><a href='/worker/{quote(match['worker'])}/qualifications/'>Qualifications</a></p>",
        )
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
    blocked = store.worker_block(worker_id)
    notice = (
        f"<p class='refused' id='blocked'>This requester blocked you: {escape(blocked)}</p>"
        if blocked
        else ""
    )
    messages = "".join(
        f"<li><b>{escape(m['subject'])}</b>: {escape(m['message'])}</li>"
        for m in store.worker_messages(worker_id)
    )
    links = (
        f"<p><a id='qualifications' href='/worker/{quote(worker_id)}/qualifications/'>"
        "Qualifications you can request</a></p>"
    )
    inbox = (
        f"<h2>Messages from requesters</h2><ul id='messages'>{messages}</ul>" if messages else ""
    )
    rows = "".join(
        f"<tr><td><a class='hit' href='/worker/{quote(worker_id)}/hits/{quote(h['HITId'])}/'>"
        f"{escape(h['Title'])}</a></td><td>${escape(h['Reward'])}</td>"
        f"<td>{h['NumberOfAssignmentsAvailable']}</td>"
        f"<td class='refused'>{escape(h['reason'])}{_qualify_link(worker_id, h['reason'])}"
        "</td></tr>"
        for h in hits
    )
    table = (
        f"<table><tr><th>HIT</th><th>reward</th><th>available</th><th>note</th></tr>{rows}</table>"
        if rows
        else "<p>No HITs available.</p>"
    )
    work = "".join(
        f"<tr><td>{escape(a['title'])}</td><td>${escape(a['reward'])}</td>"
        f"<td class='status'>{escape(a['status'])}</td><td>{escape(a['feedback'] or '')}</td>"
        f"<td>{escape(a['bonuses'] or '')}</td></tr>"
        for a in store.assignments_for_worker(worker_id)
    )
    done = (
        "<h2>Your work</h2><table id='work'><tr><th>HIT</th><th>reward</th><th>status</th>"
        f"<th>requester's feedback</th><th>bonus $</th></tr>{work}</table>"
        if work
        else ""
    )
    return _page(f"HITs for {worker_id}", notice + links + table + done + inbox)


def _qualify_link(worker_id: str, reason: str) -> str:
    if not reason.startswith("you do not qualify"):
        return ""
    return f" <a href='/worker/{quote(worker_id)}/qualifications/'>request qualifications</a>"


def _preview(store: Store, worker_id: str, hit_id: str) -> str:
    hit = store.hit_preview(worker_id=worker_id, hit_id=hit_id)
    question = store.hit_question(hit_id)
    src = _frame_src(store, hit_id, question, assignmentId=PREVIEW_ASSIGNMENT_ID)
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
        + _frame(src, question),
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
    question = store.hit_question(assignment["HITId"])
    src = _frame_src(
        store,
        assignment["HITId"],
        question,
        assignmentId=assignment_id,
        workerId=worker_id,
        turkSubmitTo=base_url,
    )
    return _page(
        hit["Title"],
        f"<form method='post' action='/worker/{quote(worker_id)}/assignments/"
        f"{quote(assignment_id)}/return'><button type='submit' id='return'>Return HIT</button>"
        "</form>" + _frame(src, question),
    )


def _content(store: Store, hit_id: str, query: dict, base_url: str) -> str:
    """The framed content of an HTMLQuestion (as the requester wrote it) or a QuestionForm
    (rendered; its submit is disabled in preview)."""
    question = store.hit_question(hit_id)
    if question.kind == "HTMLQuestion":
        return question.html
    if question.kind != "QuestionForm":
        raise ApiError(f"HIT {hit_id} frames its own ExternalURL.")
    assignment_id = query.get("assignmentId", PREVIEW_ASSIGNMENT_ID)
    submit_to = query.get("turkSubmitTo") or base_url
    form = question_form_html(
        question,
        action=f"{submit_to}/mturk/externalSubmit",
        hidden={"assignmentId": assignment_id},
    )
    if assignment_id == PREVIEW_ASSIGNMENT_ID:
        form = form.replace("<button type='submit' id='submit'>", "<button disabled id='submit'>")
    return _bare_page(store.hit_get(hit_id)["Title"], form)


def _qualifications(store: Store, worker_id: str) -> str:
    rows = []
    for qtype in store.qualifications_for_worker(worker_id):
        type_id = qtype["QualificationTypeId"]
        base = f"/worker/{quote(worker_id)}/qualifications/{quote(type_id)}/"
        if qtype["value"] is not None:
            state = f"granted (score {qtype['value']})"
            action = ""
        elif qtype["pending"]:
            state, action = "requested, waiting for the requester", ""
        else:
            state = f"rejected: {qtype['rejected']}" if qtype["rejected"] else "not held"
            if qtype["retry_in"] is not None:
                action = (
                    "no retries"
                    if qtype["retry_in"] < 0
                    else f"retry in {round(qtype['retry_in'])} s"
                )
            elif qtype.get("Test"):
                action = f"<a class='take-test' href='{base}'>Take the test</a>"
            else:
                action = (
                    f"<form method='post' action='{base}request'>"
                    "<button type='submit' class='request'>Request</button></form>"
                )
        rows.append(
            f"<tr id='q-{escape(type_id)}'><td>{escape(qtype['Name'])}</td>"
            f"<td>{escape(qtype['Description'])}</td><td class='state'>{escape(state)}</td>"
            f"<td>{action}</td></tr>"
        )
    body = (
        "<table><tr><th>qualification</th><th>description</th><th>yours</th><th></th></tr>"
        + "".join(rows)
        + "</table>"
        if rows
        else "<p>No qualifications to request.</p>"
    )
    return _page(f"Qualifications for {worker_id}", body)


def _qualification_test(store: Store, worker_id: str, type_id: str) -> str:
    qtype = store.qualification_test(type_id=type_id)
    if not qtype.get("Test"):
        raise ApiError(f"Qualification {type_id} has no test; request it from the list.")
    form = question_form_html(
        question_parse(qtype["Test"], allowed=("QuestionForm",)),
        action=f"/worker/{quote(worker_id)}/qualifications/{quote(type_id)}/request",
        hidden={},
    )
    return _page(f"Test: {qtype['Name']}", f"<p>{escape(qtype['Description'])}</p>{form}")
