"""How the local endpoint's rows read as MTurk's response shapes (``HIT``, ``Assignment``,
``QualificationType``, ``Qualification``), and the HIT status rules.

A HIT is ``Assignable`` while it has an assignment left and has not expired; ``Unassignable``
while every place is taken but some worker still holds an accepted assignment (also after
expiry: the worker keeps the assignment duration); otherwise ``Reviewable``, or ``Reviewing``
once the requester marked it so (``UpdateHITReviewStatus``); ``Disposed`` after ``DeleteHIT``.
"""

from __future__ import annotations

import json
import sqlite3

from mturk.local.common import LISTED_STATUSES, SYSTEM_QUALIFICATIONS, ApiError, answer_xml


class Views:
    def _hit_row(self, db, hit_id: str, *, deleted_ok: bool = True) -> sqlite3.Row:
        row = db.execute(
            "SELECT h.*, t.title, t.description, t.keywords, t.reward, t.duration, "
            "t.auto_approval_delay, t.qualifications FROM hits h "
            "JOIN hit_types t ON t.id = h.hit_type_id WHERE h.id=?",
            (hit_id,),
        ).fetchone()
        if row is None or (row["deleted"] is not None and not deleted_ok):
            raise ApiError(f"Hit {hit_id} does not exist.", "AWS.MechanicalTurk.HitDoesNotExist")
        return row

    def _hit_counts(self, db, hit_id: str) -> dict:
        rows = db.execute(
            "SELECT status, COUNT(*) AS n FROM assignments WHERE hit_id=? GROUP BY status",
            (hit_id,),
        ).fetchall()
        return {r["status"]: r["n"] for r in rows}

    def _hit_status(self, hit: sqlite3.Row, counts: dict, now: float) -> str:
        if hit["deleted"] is not None:
            return "Disposed"
        pending = counts.get("Accepted", 0)
        completed = sum(counts.get(s, 0) for s in LISTED_STATUSES)
        available = hit["max_assignments"] - pending - completed
        if hit["expiration"] > now and available > 0:
            return "Assignable"
        if pending > 0:
            return "Unassignable"
        return "Reviewing" if hit["reviewing"] else "Reviewable"

    def _hit_view(self, db, hit_id: str, now: float) -> dict:
        hit = self._hit_row(db, hit_id)
        counts = self._hit_counts(db, hit_id)
        pending = counts.get("Accepted", 0)
        completed = sum(counts.get(s, 0) for s in LISTED_STATUSES)
        view = {
            "HITId": hit["id"],
            "HITTypeId": hit["hit_type_id"],
            "HITGroupId": hit["hit_type_id"],
            "CreationTime": hit["created"],
            "Title": hit["title"],
            "Description": hit["description"],
            "Question": hit["question"],
            "Keywords": hit["keywords"],
            "HITStatus": self._hit_status(hit, counts, now),
            "MaxAssignments": hit["max_assignments"],
            "Reward": hit["reward"],
            "AutoApprovalDelayInSeconds": hit["auto_approval_delay"],
            "Expiration": hit["expiration"],
            "AssignmentDurationInSeconds": hit["duration"],
            "QualificationRequirements": json.loads(hit["qualifications"]),
            "HITReviewStatus": hit["review_status"] or "NotReviewed",
            "NumberOfAssignmentsPending": pending,
            "NumberOfAssignmentsAvailable": max(hit["max_assignments"] - pending - completed, 0),
            "NumberOfAssignmentsCompleted": completed,
        }
        if hit["annotation"]:
            view["RequesterAnnotation"] = hit["annotation"]
        return view

    def _assignment_view(self, db, assignment_id: str, *, any_status: bool = True) -> dict:
        row = db.execute("SELECT * FROM assignments WHERE id=?", (assignment_id,)).fetchone()
        if row is None or (not any_status and row["status"] not in LISTED_STATUSES):
            raise ApiError(
                f"Assignment {assignment_id} does not exist or is not submitted.",
                "AWS.MechanicalTurk.AssignmentDoesNotExist",
            )
        view = {
            "AssignmentId": row["id"],
            "WorkerId": row["worker_id"],
            "HITId": row["hit_id"],
            "AssignmentStatus": row["status"],
            "AcceptTime": row["accept_time"],
            "Deadline": row["deadline"],
        }
        for key, column in (
            ("SubmitTime", "submit_time"),
            ("AutoApprovalTime", "auto_approval_time"),
            ("ApprovalTime", "approval_time"),
            ("RejectionTime", "rejection_time"),
            ("RequesterFeedback", "feedback"),
        ):
            if row[column] is not None:
                view[key] = row[column]
        if row["answer"] is not None:
            view["Answer"] = answer_xml(json.loads(row["answer"]))
        return view

    def _qualification_type_row(self, db, type_id: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM qualification_types WHERE id=?", (type_id,)).fetchone()
        if row is None:
            raise ApiError(
                f"QualificationType {type_id} does not exist.",
                "AWS.MechanicalTurk.QualificationTypeDoesNotExist",
            )
        return row

    def _qualification_type_view(self, db, type_id: str) -> dict:
        if type_id in SYSTEM_QUALIFICATIONS:
            name, description = SYSTEM_QUALIFICATIONS[type_id]
            return {
                "QualificationTypeId": type_id,
                "CreationTime": 0,
                "Name": name,
                "Description": description,
                "QualificationTypeStatus": "Active",
                "IsRequestable": False,
                "AutoGranted": False,
            }
        row = self._qualification_type_row(db, type_id)
        view = {
            "QualificationTypeId": row["id"],
            "CreationTime": row["created"],
            "Name": row["name"],
            "Description": row["description"],
            "QualificationTypeStatus": row["status"],
            "IsRequestable": True,
            "AutoGranted": bool(row["auto_granted"]),
        }
        if row["keywords"]:
            view["Keywords"] = row["keywords"]
        if row["test"]:
            view["Test"] = row["test"]
            view["TestDurationInSeconds"] = row["test_duration"]
        if row["answer_key"]:
            view["AnswerKey"] = row["answer_key"]
        if row["retry_delay"] is not None:
            view["RetryDelayInSeconds"] = row["retry_delay"]
        if row["auto_granted"]:
            view["AutoGrantedValue"] = row["auto_granted_value"]
        return view

    @staticmethod
    def _qualification_view(row: sqlite3.Row) -> dict:
        return {
            "QualificationTypeId": row["type_id"],
            "WorkerId": row["worker_id"],
            "GrantTime": row["granted"],
            "IntegerValue": row["value"],
            "Status": row["status"] or "Granted",
        }

    @staticmethod
    def _qualification_request_view(row: sqlite3.Row) -> dict:
        view = {
            "QualificationRequestId": str(row["id"]),
            "QualificationTypeId": row["type_id"],
            "WorkerId": row["worker_id"],
            "SubmitTime": row["submitted"],
        }
        if row["test"]:
            view["Test"] = row["test"]
        if row["answer"] is not None:
            view["Answer"] = answer_xml(json.loads(row["answer"]))
        return view
