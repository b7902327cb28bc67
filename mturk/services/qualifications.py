"""The "participated" qualifications that keep a worker to one HIT of a study (and, when the
study asks, of any study on the platform): created once per environment, required as
DoesNotExist by the study's HIT type, granted to each worker MTurk lists for the study when its
assignments are synced."""

from __future__ import annotations

from typing import Any

from mturk.client import MTurkServiceError, client_environment, mturk_call
from mturk.models import Hit, QualificationType
from mturk.services.calls import request_once
from mturk.services.hit_settings import HitSettings

NAME_PREFIX = "studyplatform participated"
ANY_STUDY = "any study"


def _name(study: Any | None) -> str:
    return f"{NAME_PREFIX}: {study.slug if study is not None else ANY_STUDY}"


def _find_by_name(client: Any, name: str) -> str:
    token = None
    while True:
        params = {"Query": name, "MustBeRequestable": False, "MustBeOwnedByCaller": True}
        if token:
            params["NextToken"] = token
        page = mturk_call(client, "list_qualification_types", MaxResults=100, **params)
        for item in page.get("QualificationTypes", []):
            if item["Name"] == name:
                return item["QualificationTypeId"]
        token = page.get("NextToken")
        if not token:
            return ""


def qualification_type_ensure(*, client: Any, study: Any | None) -> QualificationType:
    """The participated qualification type of ``study`` (``None``: the cross-study one),
    created on MTurk the first time. The row is saved before the call; a type created by a call
    whose answer was lost is found again by its name."""
    environment = client_environment(client)
    name = _name(study)
    row, _ = QualificationType.objects.get_or_create(
        environment=environment, study=study, defaults={"name": name}
    )
    if row.qualification_type_id:
        return row
    try:
        response = mturk_call(
            client,
            "create_qualification_type",
            Name=name,
            Description=(
                "Granted to workers who took part in "
                + (f"the study {study.slug}" if study is not None else "a study of this requester")
                + "; they cannot take another of its HITs."
            ),
            QualificationTypeStatus="Active",
            Keywords="studyplatform",
        )
        type_id = response["QualificationType"]["QualificationTypeId"]
    except MTurkServiceError as exc:
        if "already" not in exc.message.lower():
            raise
        type_id = _find_by_name(client, name)
        if not type_id:
            raise
    row.qualification_type_id = type_id
    row.save(update_fields=["qualification_type_id"])
    return row


def participation_qualifications_ensure(
    *, client: Any, study: Any, settings: HitSettings
) -> list[str]:
    """Qualification type ids to require as DoesNotExist for this study's HITs."""
    ids = []
    if settings.exclude_participated:
        ids.append(qualification_type_ensure(client=client, study=study).qualification_type_id)
    if settings.exclude_participated_any_study:
        ids.append(qualification_type_ensure(client=client, study=None).qualification_type_id)
    return ids


def participation_grant(*, study: Any, worker_id: str, client: Any) -> list[str]:
    """Grant the study's participated qualification(s) to ``worker_id``.

    ``worker_id`` is a worker MTurk reported (``assignments_sync`` passes each listed
    assignment's ``WorkerId``), never one read from a URL: a forged id would otherwise be
    granted (an MTurk call per fake id) and a real worker named in a URL locked out.
    Returns the qualification type ids granted now (empty for a study never published in this
    client's environment, or when every grant was made before). Repeating it is harmless.
    """
    environment = client_environment(client)
    if not Hit.objects.filter(environment=environment, study=study).exists():
        return []
    types = QualificationType.objects.filter(environment=environment).exclude(
        qualification_type_id=""
    )
    type_ids = [
        row.qualification_type_id
        for row in types
        if row.study_id == study.pk or (row.study_id is None and _study_uses_cross(study))
    ]
    granted = []
    for type_id in type_ids:
        _, response = request_once(
            client=client,
            environment=environment,
            key=f"grant:{type_id}:{worker_id}",
            operation="associate_qualification_with_worker",
            params={
                "QualificationTypeId": type_id,
                "WorkerId": worker_id,
                "IntegerValue": 1,
                "SendNotification": False,
            },
        )
        if response is not None:
            granted.append(type_id)
    return granted


def _study_uses_cross(study: Any) -> bool:
    quals = (study.mturk or {}).get("qualifications") or {}
    return bool(quals.get("exclude_participated_any_study"))
