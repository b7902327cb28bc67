"""Operations of the local endpoint that only make sense on AWS: HIT event notifications to
e-mail, SQS or SNS, and the S3 URL of a worker's uploaded file.

They validate their input as MTurk does and record, in the store's outbox
(``Store.outbox()``, ``GET /_control/state``), the message MTurk would have sent; nothing
leaves the machine. Notification settings are kept per HIT type and every later event of a
chosen type (accepted, returned, abandoned, submitted, approved, rejected, HIT created, extended,
expired, reviewable, disposed) is recorded the same way.
"""

from __future__ import annotations

import json
import re

from mturk.local.common import ApiError

NOTIFICATION_VERSION = "2006-05-05"
UPLOAD_URL_SECONDS = 60
_SQS_URL = re.compile(r"^https://sqs\.[a-z0-9-]+\.amazonaws\.com/\d{12}/[A-Za-z0-9_.-]{1,80}$")
_SNS_ARN = re.compile(r"^arn:aws:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def notification_check(spec: dict, *, test: bool) -> None:
    """Raise ``RequestError`` unless ``spec`` (a NotificationSpecification) is one MTurk takes:
    version 2006-05-05, a destination fitting its transport, and ``Ping`` only in a test."""
    if spec["Version"] != NOTIFICATION_VERSION:
        raise ApiError(f"Notification Version must be {NOTIFICATION_VERSION}.")
    pattern = {"SQS": _SQS_URL, "SNS": _SNS_ARN, "Email": _EMAIL}[spec["Transport"]]
    if not pattern.match(spec["Destination"]):
        raise ApiError(
            f"Destination {spec['Destination']!r} is not a valid {spec['Transport']} destination."
        )
    if not spec["EventTypes"]:
        raise ApiError("EventTypes must name at least one event.")
    if "Ping" in spec["EventTypes"] and not test:
        raise ApiError("The Ping event is only valid for SendTestEventNotification.")


class NotificationsApi:
    def op_UpdateNotificationSettings(self, db, now, params):
        type_id = params["HITTypeId"]
        if not db.execute("SELECT 1 FROM hit_types WHERE id=?", (type_id,)).fetchone():
            raise ApiError(
                f"HITType {type_id} does not exist.", "AWS.MechanicalTurk.HITTypeDoesNotExist"
            )
        current = db.execute(
            "SELECT * FROM notification_settings WHERE hit_type_id=?", (type_id,)
        ).fetchone()
        spec = params.get("Notification")
        if spec is None and current is None:
            raise ApiError(f"HIT type {type_id} has no notification settings to change.")
        if spec is not None:
            notification_check(spec, test=False)
        active = params.get("Active")
        if active is None:
            active = True if current is None else bool(current["active"])
        db.execute(
            "INSERT OR REPLACE INTO notification_settings VALUES (?, ?, ?)",
            (type_id, json.dumps(spec) if spec else current["spec"], int(active)),
        )
        return {}

    def op_SendTestEventNotification(self, db, now, params):
        spec = params["Notification"]
        notification_check(spec, test=True)
        self._outbox(db, now, spec, params["TestEventType"], "", "", "")
        return {}

    def op_GetFileUploadURL(self, db, now, params):
        assignment_id, question = params["AssignmentId"], params["QuestionIdentifier"]
        row = self._assignment_row(db, assignment_id)
        if row["status"] not in {"Submitted", "Approved", "Rejected"}:
            raise ApiError(
                f"Assignment {assignment_id} is {row['status']}; files exist only once it is "
                "submitted.",
                "AWS.MechanicalTurk.InvalidAssignmentState",
            )
        answers = json.loads(row["answer"] or "{}")
        if question not in answers:
            raise ApiError(
                f"Assignment {assignment_id} has no answer to question {question!r}.",
                "AWS.MechanicalTurk.FileUploadAnswerDoesNotExist",
            )
        # No S3 here: the URL names the file under a reserved (.invalid) host and the request
        # is recorded; on AWS it would be a presigned S3 URL valid for 60 seconds.
        url = f"https://uploads.local-mturk.invalid/{assignment_id}/{question}"
        spec = {"Transport": "S3", "Destination": url, "Version": "", "EventTypes": []}
        self._outbox(db, now, spec, "FileUploadURL", "", row["hit_id"], assignment_id)
        return {"FileUploadURL": url}
