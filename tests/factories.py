"""Test data built from plain rows, shared by the test packages.

``plain_study``: a study without images on disk or features, for the rules of task pairs and
assignments, which only look at classes, pairs and cells.
"""

from __future__ import annotations

import itertools

from retrieval.models import Archive, Category, FeatureSet, Image, ImageDirectory
from studyplatform.studies.models import Condition, QueryImage, Study
from studyplatform.studies.services.task_pairs import task_pair_generate

_counter = itertools.count()


def plain_study(
    *,
    classes: int = 4,
    per_class: int = 2,
    repetitions: int = 2,
    seed: int = 0,
    treatments: int = 1,
    count: int | None = None,
    design: str = "control_vs_treatment",
    status: str = Study.Status.LIVE,
    timeout_minutes: int = 60,
) -> Study:
    """A study of ``classes * per_class`` queries, one no-XAI condition and ``treatments``
    SBSM ones, its task pairs generated; ``count`` pairs per comparison (default: queries)."""
    n = next(_counter)
    archive = Archive.objects.create(name=f"plain-{n}")
    directory = ImageDirectory.objects.create(archive=archive, path=f"/nonexistent/plain-{n}")
    categories = Category.objects.bulk_create(
        Category(archive=archive, coco_id=c + 1, name=f"class{c}", image_count=per_class)
        for c in range(classes)
    )
    images = Image.objects.bulk_create(
        Image(
            archive=archive,
            directory=directory,
            coco_id=i + 1,
            file_name=f"{i + 1:06d}.jpg",
            width=64,
            height=64,
        )
        for i in range(classes * per_class)
    )
    feature_set = FeatureSet.objects.create(
        archive=archive, backbone_config={"name": "synthnet"}, config_key=f"{n:064d}", path="x.npy"
    )
    study = Study.objects.create(
        slug=f"plain-{n}",
        title="plain",
        archive=archive,
        feature_set=feature_set,
        repetitions=repetitions,
        seed=seed,
        status=status,
        assignment_timeout_minutes=timeout_minutes,
        spec={"task_pairs": {"design": design, **({"count": count} if count else {})}},
    )
    Condition.objects.create(study=study, name="no-xai")
    for t in range(treatments):
        Condition.objects.create(
            study=study, name=f"sbsm-{t}", method="sbsm", method_config={"method": "sbsm"}
        )
    QueryImage.objects.bulk_create(
        QueryImage(study=study, image=image, category=categories[i // per_class])
        for i, image in enumerate(images)
    )
    task_pair_generate(study=study)
    return study
