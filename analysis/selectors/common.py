"""Settings of a study's analysis read from its rows: included HITs, pseudonym salt, the
adjudication rule and the conditions (see ``analysis.selectors.tasks`` for their use)."""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings

from studyplatform.studies.models import Assignment, Study

__all__ = ["DEFAULT_STATUSES", "study_conditions", "study_salt"]

#: Assignment statuses whose data are analysed by default (rejected, returned, abandoned and
#: still active HITs are not data).
DEFAULT_STATUSES: tuple[str, ...] = (Assignment.Status.SUBMITTED, Assignment.Status.APPROVED)


def study_salt(*, study: Study) -> str:
    """Salt of the study's worker pseudonyms.

    ``Study.spec["analysis"]["pseudonym_salt"]`` when the spec gives one; otherwise
    HMAC-SHA256(SECRET_KEY, "worker-pseudonym:<study id>"): stable across exports of one study,
    different between studies (pseudonyms cannot be joined across studies), and not
    recomputable without the secret key (rotating SECRET_KEY changes the pseudonyms).
    """
    given = (study.spec or {}).get("analysis", {}).get("pseudonym_salt")
    if given:
        return str(given)
    message = f"worker-pseudonym:{study.pk}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def study_conditions(*, study: Study) -> dict[str, bool]:
    """Condition name to whether it shows explanations."""
    return {name: bool(method) for name, method in study.conditions.values_list("name", "method")}
