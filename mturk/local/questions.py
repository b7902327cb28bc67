"""MTurk's question documents: ExternalQuestion, HTMLQuestion and QuestionForm.

:func:`question_parse` checks a ``Question`` (or a qualification ``Test``) the way MTurk does
before it accepts a HIT (well-formed XML, a known root element, the elements each kind needs,
at most 65,535 bytes) and returns what the worker's side needs to show it. A document MTurk would
refuse answers ``ParameterValidationError``, the type MTurk gives XML it cannot use.

:func:`question_form_html` renders a QuestionForm as a plain HTML form (free text and selection
answers); :func:`answer_key_score` scores a qualification test's answers with its AnswerKey.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from html import escape

MAX_QUESTION_BYTES = 65_535
KINDS = ("ExternalQuestion", "HTMLQuestion", "QuestionForm")


@dataclass
class FormQuestion:
    """One question of a QuestionForm: ``kind`` is ``"text"`` or ``"selection"``;
    ``selections`` holds (identifier, text) pairs; ``many`` allows several selections."""

    identifier: str
    text: str
    kind: str
    selections: list[tuple[str, str]] = field(default_factory=list)
    many: bool = False


@dataclass
class Question:
    """A parsed question document. ``url`` (ExternalQuestion), ``html`` (HTMLQuestion) or
    ``questions`` (QuestionForm) is set according to ``kind``; ``frame_height`` in pixels."""

    kind: str
    frame_height: int = 800
    url: str = ""
    html: str = ""
    overview: str = ""
    questions: list[FormQuestion] = field(default_factory=list)


def _invalid(detail: str) -> Exception:
    from mturk.local.common import ApiError

    return ApiError(
        "There was an error parsing the XML question or answer data in your request. Make "
        f"sure the data is well-formed and valid for its schema. Details: {detail}",
        "AWS.MechanicalTurk.XMLParseError",
        type_="ParameterValidationError",
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _text(element: ET.Element | None) -> str:
    return "" if element is None else "".join(element.itertext()).strip()


def question_parse(document: str, *, allowed: tuple[str, ...] = KINDS) -> Question:
    """Parse ``document``; raises ``ParameterValidationError`` (an ``ApiError``) when MTurk
    would refuse it. ``allowed`` narrows the root elements (a qualification test must be a
    QuestionForm)."""
    if len(document.encode()) > MAX_QUESTION_BYTES:
        raise _invalid(f"the document is {len(document.encode())} bytes; at most 65535.")
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise _invalid(f"not well-formed XML ({exc}).") from None
    kind = _local(root.tag)
    if kind not in allowed:
        raise _invalid(f"the root element is {kind}; expected one of {', '.join(allowed)}.")
    height = _text(_child(root, "FrameHeight"))
    question = Question(kind=kind)
    if kind in {"ExternalQuestion", "HTMLQuestion"}:
        if not height:
            raise _invalid(f"{kind} needs a FrameHeight.")
        if not height.isdigit():
            raise _invalid(f"FrameHeight {height!r} is not a whole number of pixels.")
        question.frame_height = int(height) or 800  # 0 lets MTurk size the frame
    if kind == "ExternalQuestion":
        url = _text(_child(root, "ExternalURL"))
        if not url:
            raise _invalid("ExternalQuestion needs an ExternalURL.")
        # AWS requires https; http stays allowed so a platform on this machine can be framed.
        if not url.startswith(("https://", "http://")):
            raise _invalid(f"ExternalURL {url!r} is not an http(s) URL.")
        question.url = url
    elif kind == "HTMLQuestion":
        question.html = _text(_child(root, "HTMLContent"))
        if not question.html:
            raise _invalid("HTMLQuestion needs a non-empty HTMLContent.")
    else:
        question.overview = _text(_child(root, "Overview"))
        question.questions = _form_questions(root)
    return question


def _form_questions(root: ET.Element) -> list[FormQuestion]:
    out = []
    for element in root:
        if _local(element.tag) != "Question":
            continue
        identifier = _text(_child(element, "QuestionIdentifier"))
        if not identifier:
            raise _invalid("every Question needs a QuestionIdentifier.")
        content = _child(element, "QuestionContent")
        spec = _child(element, "AnswerSpecification")
        if content is None or spec is None:
            raise _invalid(f"Question {identifier} needs QuestionContent and AnswerSpecification.")
        text = _text(_child(content, "Text")) or _text(content)
        if _child(spec, "FreeTextAnswer") is not None:
            out.append(FormQuestion(identifier=identifier, text=text, kind="text"))
            continue
        selection = _child(spec, "SelectionAnswer")
        if selection is None:
            raise _invalid(f"Question {identifier}: FreeTextAnswer or SelectionAnswer expected.")
        choices = _child(selection, "Selections")
        pairs = [
            (_text(_child(s, "SelectionIdentifier")), _text(_child(s, "Text")))
            for s in (choices if choices is not None else [])
            if _local(s.tag) == "Selection"
        ]
        if not pairs or not all(ident for ident, _ in pairs):
            raise _invalid(f"Question {identifier}: a SelectionAnswer needs Selections.")
        many = (_text(_child(selection, "MaxSelectionCount")) or "1") not in {"0", "1"}
        out.append(
            FormQuestion(
                identifier=identifier, text=text, kind="selection", selections=pairs, many=many
            )
        )
    if not out:
        raise _invalid("a QuestionForm needs at least one Question.")
    return out


def question_form_html(question: Question, *, action: str, hidden: dict[str, str]) -> str:
    """A QuestionForm as an HTML form posting to ``action`` with ``hidden`` fields; every
    value is escaped. Field names are the QuestionIdentifiers."""
    parts = [f"<form method='post' action='{escape(action)}' id='question-form'>"]
    for name, value in hidden.items():
        parts.append(f"<input type='hidden' name='{escape(name)}' value='{escape(value)}'>")
    if question.overview:
        parts.append(f"<p class='overview'>{escape(question.overview)}</p>")
    for item in question.questions:
        ident = escape(item.identifier)
        parts.append(f"<fieldset><legend>{escape(item.text)}</legend>")
        if item.kind == "text":
            parts.append(f"<textarea name='{ident}' id='q-{ident}' rows='3' cols='60'></textarea>")
        else:
            box = "checkbox" if item.many else "radio"
            for value, label in item.selections:
                parts.append(
                    f"<label><input type='{box}' name='{ident}' value='{escape(value)}'> "
                    f"{escape(label)}</label><br>"
                )
        parts.append("</fieldset>")
    parts.append("<button type='submit' id='submit'>Submit</button></form>")
    return "".join(parts)


def answer_key_check(document: str) -> None:
    """Raise ``ParameterValidationError`` unless ``document`` is a well-formed AnswerKey."""
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise _invalid(f"the AnswerKey is not well-formed XML ({exc}).") from None
    if _local(root.tag) != "AnswerKey":
        raise _invalid(f"the AnswerKey's root element is {_local(root.tag)}.")


def answer_key_score(document: str, answers: dict[str, str]) -> int:
    """Sum of the AnswerScore of every AnswerOption whose SelectionIdentifier the worker chose
    (``answers`` maps QuestionIdentifier to the chosen SelectionIdentifier)."""
    root = ET.fromstring(document)
    score = 0
    for question in root:
        if _local(question.tag) != "Question":
            continue
        chosen = answers.get(_text(_child(question, "QuestionIdentifier")), "")
        for option in question:
            if _local(option.tag) != "AnswerOption":
                continue
            wanted = {
                _text(s) for s in option if _local(s.tag) == "SelectionIdentifier" and _text(s)
            }
            if chosen in wanted:
                score += int(_text(_child(option, "AnswerScore")) or 0)
    return score
