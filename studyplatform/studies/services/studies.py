"""Studies: build one from its spec, export it back, move it through its states.

A study is ``draft`` while it is designed, ``ready`` once its task pairs exist and its features
are extracted, ``live`` while workers take it and ``closed`` after; see :data:`TRANSITIONS`.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.db import transaction

from retrieval.backbone_config import BackboneConfig, backbone_config_key
from retrieval.models import Archive, Category, FeatureSet, Image

from ..models import Condition, QueryImage, Question, Questionnaire, Study, TaskPair
from ..spec_schema import FOR as _FOR
from .specs import StudySpecError, study_spec_validate
from .task_pairs import task_pair_generate

__all__ = [
    "TRANSITIONS",
    "StudyStatusError",
    "study_create_from_spec",
    "study_spec_export",
    "study_status_set",
]

#: Allowed status changes. ``ready -> draft`` lets a researcher change a study that is not yet
#: live; nothing leaves ``closed``.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    Study.Status.DRAFT: (Study.Status.READY,),
    Study.Status.READY: (Study.Status.LIVE, Study.Status.DRAFT),
    Study.Status.LIVE: (Study.Status.CLOSED,),
    Study.Status.CLOSED: (),
}


class StudyStatusError(ValueError):
    """A status change that is not allowed, or whose preconditions do not hold."""


def study_create_from_spec(*, spec: Mapping, owner=None) -> Study:
    """Create a study, in status ``draft``, with its conditions, queries, questionnaires and
    task pairs.

    Parameters
    ----------
    spec : mapping
        A spec as parsed from YAML or as :func:`~.specs.study_spec_load` returns it; it is
        validated (again) here.

    Returns
    -------
    Study
        ``study.spec`` holds the normalised spec.

    Raises
    ------
    StudySpecError
        A wrong field, or ``slug`` taken by another study. Everything is written in one
        transaction: on any error nothing is left behind.
    """
    spec = study_spec_validate(spec)
    with transaction.atomic():
        if Study.objects.filter(slug=spec["slug"]).exists():
            raise StudySpecError("slug", f"a study named {spec['slug']!r} exists already")
        archive = Archive.objects.get(name=spec["archive"])
        feature_set = FeatureSet.objects.get(
            archive=archive,
            config_key=backbone_config_key(
                BackboneConfig.from_dict(spec["feature_set"]["backbone"])
            ),
        )
        sizes = spec["sizes"]
        study = Study(
            slug=spec["slug"],
            title=spec["title"],
            description=spec["description"],
            archive=archive,
            feature_set=feature_set,
            distance=spec["distance"],
            target_count=sizes["target_count"],
            iqr_rounds=sizes["iqr_rounds"],
            results_per_round=sizes["results_per_round"],
            candidate_pool_size=sizes["candidate_pool_size"],
            search_scope=spec["search"]["scope"],
            search_working_set=spec["search"]["working_set"],
            round_budget_s=spec["search"]["round_budget_s"],
            warm_start_neighbours=spec["search"]["warm_start_neighbours"],
            repetitions=spec["repetitions"],
            assignment_timeout_minutes=spec["assignment_timeout_minutes"],
            seed=spec["seed"],
            superclasses=spec["superclasses"],
            tutorial=spec["tutorial"],
            lab_enabled=spec["lab"]["enabled"],
            lab_codes=spec["lab"]["codes"],
            mturk=spec["mturk"],
            spec=spec,
            owner=owner,
        )
        study.full_clean()
        study.save()
        for item in spec["conditions"]:
            condition = Condition(
                study=study,
                name=item["name"],
                label=item["label"],
                method=item["method"],
                method_config={"method": item["method"], **item["config"]}
                if item["method"]
                else {},
            )
            condition.full_clean()
            condition.save()
        categories = {c.name: c for c in Category.objects.filter(archive=archive)}
        images = {
            coco_id: pk
            for pk, coco_id in Image.objects.filter(
                archive=archive, coco_id__in=[q["image_id"] for q in spec["queries"]]
            ).values_list("pk", "coco_id")
        }
        QueryImage.objects.bulk_create(
            QueryImage(study=study, image_id=images[q["image_id"]], category=categories[q["class"]])
            for q in spec["queries"]
        )
        for item in spec["questionnaires"]:
            questionnaire = Questionnaire.objects.create(
                study=study, kind=item["kind"], for_xai=_FOR[item["for"]], title=item["title"]
            )
            Question.objects.bulk_create(
                Question(
                    questionnaire=questionnaire,
                    code=q["code"],
                    position=position,
                    text=q["text"],
                    scale=q["scale"],
                    required=q["required"],
                )
                for position, q in enumerate(item["questions"], start=1)
            )
        task_pair_generate(study=study)
    return study


def study_spec_export(*, study: Study) -> dict:
    """The study as a normalised spec, read from its rows (not from ``study.spec``).

    ``study_spec_load(study_spec_dump(study_spec_export(study=s)))`` equals the normalised spec
    the study was created from, as long as the study was not changed since.
    """
    for_names = {value: name for name, value in _FOR.items()}
    conditions = list(Condition.objects.filter(study=study).order_by("id"))
    n_pairs = TaskPair.objects.filter(study=study).count()
    design = (study.spec.get("task_pairs") or {}).get("design", "control_vs_treatment")
    comparisons = {
        (a, b)
        for a, b in TaskPair.objects.filter(study=study).values_list(
            "condition_a_id", "condition_b_id"
        )
    }
    queries = QueryImage.objects.filter(study=study).select_related("image", "category")
    questionnaires = []
    for questionnaire in Questionnaire.objects.filter(study=study).order_by("id"):
        questionnaires.append(
            {
                "kind": questionnaire.kind,
                "for": for_names[questionnaire.for_xai],
                "title": questionnaire.title,
                "questions": [
                    {"code": q.code, "text": q.text, "scale": q.scale, "required": q.required}
                    for q in questionnaire.questions.order_by("position")
                ],
            }
        )
    return {
        "slug": study.slug,
        "title": study.title,
        "description": study.description,
        "archive": study.archive.name,
        "feature_set": {
            "backbone": BackboneConfig.from_dict(study.feature_set.backbone_config).to_dict()
        },
        "distance": study.distance,
        "sizes": {
            "target_count": study.target_count,
            "iqr_rounds": study.iqr_rounds,
            "results_per_round": study.results_per_round,
            "candidate_pool_size": study.candidate_pool_size,
        },
        "search": {
            "scope": study.search_scope,
            "working_set": study.search_working_set,
            "round_budget_s": study.round_budget_s,
            "warm_start_neighbours": study.warm_start_neighbours,
        },
        "repetitions": study.repetitions,
        "assignment_timeout_minutes": study.assignment_timeout_minutes,
        "seed": study.seed,
        "conditions": [
            {
                "name": c.name,
                "label": c.label,
                "method": c.method,
                "config": {k: v for k, v in c.method_config.items() if k != "method"},
            }
            for c in conditions
        ],
        "queries": [
            {"image_id": q.image.coco_id, "image": q.image.file_name, "class": q.category.name}
            for q in queries.order_by("id")
        ],
        "task_pairs": {"count": n_pairs // max(1, len(comparisons)), "design": design},
        "questionnaires": questionnaires,
        "superclasses": study.superclasses,
        "tutorial": study.tutorial,
        "lab": {"enabled": study.lab_enabled, "codes": study.lab_codes},
        "mturk": study.mturk,
        "analysis": (study.spec or {}).get("analysis", {}),
        # protocol settings kept only in the spec (read where they act: the HIT services,
        # the assignment rule, the overlay renderer)
        "stop": (study.spec or {}).get("stop", "at_target"),
        "task_time_limit_minutes": (study.spec or {}).get("task_time_limit_minutes"),
        "order": (study.spec or {}).get("order", "balanced"),
        "hits": (study.spec or {}).get("hits"),
        "overlay": (study.spec or {}).get("overlay", {}),
    }


def study_status_set(*, study: Study, status: str) -> Study:
    """Move ``study`` to ``status`` (see :data:`TRANSITIONS`); setting the current status again
    changes nothing.

    ``ready`` (and hence ``live``) needs task pairs and a finished feature set.

    Raises
    ------
    StudyStatusError
        Unknown status, a transition not allowed, or a precondition not met; the study is left
        as it was.
    """
    if status not in Study.Status.values:
        raise StudyStatusError(f"unknown status {status!r}; valid: {Study.Status.values}")
    with transaction.atomic():
        current = Study.objects.select_for_update().get(pk=study.pk)
        if current.status == status:
            study.status = status
            return study
        if status not in TRANSITIONS[current.status]:
            raise StudyStatusError(
                f"study {current.slug!r} cannot go from {current.status} to {status}; "
                f"allowed: {list(TRANSITIONS[current.status]) or 'none'}"
            )
        if status == Study.Status.READY:
            if not TaskPair.objects.filter(study=current).exists():
                raise StudyStatusError(f"study {current.slug!r} has no task pairs")
            feature_set = current.feature_set
            if feature_set.status != FeatureSet.Status.DONE:
                raise StudyStatusError(
                    f"study {current.slug!r}: feature set {feature_set.pk} is "
                    f"{feature_set.status}, not done; extract its features first"
                )
        current.status = status
        current.save(update_fields=["status", "updated_at"])
    study.status = status
    study.updated_at = current.updated_at
    return study
