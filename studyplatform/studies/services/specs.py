"""Study specs: the YAML a researcher writes, checked by one schema and resolved against the
database.

:func:`study_spec_load` reads a spec (a file path or the YAML text) and returns the normalised
spec, a plain JSON-able dict with every default filled in and every reference resolved; any
problem raises :class:`StudySpecError`, whose message starts with the path of the offending
field (``mturk.qualifications.custom[1].comparator: must be one of ...``). The normalised spec is
what ``study_create_from_spec`` builds from and what ``study_spec_export`` gives back, so
``study_spec_load(export(create(spec))) == study_spec_load(spec)``.

The fields, their types, defaults and limits are those of :mod:`..spec_schema` (the core's
fields and the blocks ``mturk`` and ``analysis`` register); ``docs/study-spec.md`` is their
reference, generated from the schema. Here the names are resolved: the archive, the feature
set (normalised to ``{backbone: <full config>}``, which names the same features on any
installation), the query images and classes (normalised to ``[{image_id, image, class}]``),
the candidate pool against the archive's size, the task-pair plan and the superclasses.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from retrieval.backbone_config import BackboneConfig, backbone_config_key
from retrieval.models import Annotation, Archive, Category, FeatureSet, Image

from ..spec_schema import QueriesDrawn, QueryListed, StudySpecCore, study_spec_model
from ..spec_types import spec_problems
from .assignments import pair_capacities
from .task_pairs import TaskPairError, task_pair_comparisons, task_pair_plan

__all__ = [
    "StudySpecError",
    "study_spec_check",
    "study_spec_dump",
    "study_spec_load",
    "study_spec_parse",
    "study_spec_validate",
]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class StudySpecError(ValueError):
    """A spec field is missing or wrong; ``path`` names it (``queries[3].class``).

    ``problems`` holds every ``(path, message)`` the schema found; the message is the first.
    """

    def __init__(self, path: str, message: str, *, problems: list | None = None) -> None:
        self.path = path
        self.problems = problems or [(path, message)]
        more = f" (and {len(self.problems) - 1} more problem(s))" if len(self.problems) > 1 else ""
        super().__init__((f"{path}: {message}" if path else message) + more)


def _archive(name: str) -> Archive:
    archive = Archive.objects.filter(name=name).first()
    if archive is None:
        known = list(Archive.objects.order_by("name").values_list("name", flat=True)[:20])
        raise StudySpecError("archive", f"no archive named {name!r}; known: {known}")
    return archive


def _feature_set(value: int | str | Mapping, archive: Archive) -> FeatureSet:
    """The feature set ``value`` names (its type checked by the schema)."""
    path = "feature_set"
    sets = FeatureSet.objects.filter(archive=archive)
    if isinstance(value, int):
        found = sets.filter(pk=value).first()
        if found is None:
            raise StudySpecError(
                path, f"archive {archive.name!r} has no feature set with id {value}"
            )
        return found
    if isinstance(value, str):
        if _HEX64.match(value):
            found = sets.filter(config_key=value).first()
            if found is None:
                raise StudySpecError(path, f"archive {archive.name!r} has no feature set {value}")
            return found
        named = [fs for fs in sets if fs.backbone_config.get("name") == value]
        if len(named) != 1:
            raise StudySpecError(
                path,
                f"archive {archive.name!r} has {len(named)} feature sets of backbone {value!r}; "
                "give the backbone config ({backbone: {name: ..., weights: ...}}) instead",
            )
        return named[0]
    config = value["backbone"] if set(value) == {"backbone"} else value
    config_path = f"{path}.backbone" if config is not value else path
    if not isinstance(config, Mapping):
        raise StudySpecError(config_path, "must be a backbone config mapping")
    try:
        parsed = BackboneConfig.from_dict(config)
    except (TypeError, ValueError) as exc:
        raise StudySpecError(config_path, str(exc)) from None
    found = sets.filter(config_key=backbone_config_key(parsed)).first()
    if found is None:
        raise StudySpecError(
            path,
            f"archive {archive.name!r} has no feature set of {parsed.to_dict()}; extract it "
            f"first: manage.py extract_features --archive {archive.name} --backbone "
            f"{parsed.name} --weights {parsed.weights}",
        )
    return found


def _queries_drawn(
    drawn: QueriesDrawn, archive: Archive, categories: dict, seed: int
) -> list[dict]:
    for i, name in enumerate(drawn.classes):
        if name not in categories:
            raise StudySpecError(
                f"queries.classes[{i}]", f"the archive has no class named {name!r}"
            )
    if drawn.per_class is not None:
        wanted = [drawn.per_class] * len(drawn.classes)
    else:
        base, extra = divmod(drawn.total, len(drawn.classes))
        wanted = [base + (1 if i < extra else 0) for i in range(len(drawn.classes))]
    rng = random.Random(seed if drawn.seed is None else drawn.seed)
    taken: set[int] = set()
    queries = []
    for name, n in zip(drawn.classes, wanted, strict=True):
        rows = list(
            Image.objects.filter(archive=archive, annotations__category=categories[name])
            .distinct()
            .order_by("coco_id")
            .values_list("pk", "coco_id", "file_name")
        )
        free = [row for row in rows if row[0] not in taken]
        if len(free) < n:
            raise StudySpecError(
                "queries",
                f"class {name!r} has {len(free)} image(s) free to be queries, {n} wanted",
            )
        for pk, coco_id, file_name in sorted(rng.sample(free, n), key=lambda row: row[1]):
            taken.add(pk)
            queries.append({"image_id": coco_id, "image": file_name, "class": name})
    return queries


def _queries_listed(items: list[QueryListed], archive: Archive, categories: dict) -> list[dict]:
    queries = []
    seen: dict[int, int] = {}
    for i, item in enumerate(items):
        path = f"queries[{i}]"
        images = Image.objects.filter(archive=archive)
        if item.image_id is not None:
            images = images.filter(coco_id=item.image_id)
        if item.image:
            images = images.filter(file_name=item.image)
        found = list(images[:2])
        where = f"{path}.image_id" if item.image_id is not None else f"{path}.image"
        if not found:
            raise StudySpecError(where, f"archive {archive.name!r} has no such image")
        if len(found) > 1:
            raise StudySpecError(where, "names several images; give image_id")
        image, name = found[0], item.class_
        if name not in categories:
            raise StudySpecError(f"{path}.class", f"the archive has no class named {name!r}")
        if not Annotation.objects.filter(image=image, category=categories[name]).exists():
            raise StudySpecError(
                f"{path}.class", f"image {image.file_name} holds no {name!r} instance"
            )
        if image.pk in seen:
            raise StudySpecError(
                path, f"image {image.file_name} is already queries[{seen[image.pk]}]"
            )
        seen[image.pk] = i
        queries.append({"image_id": image.coco_id, "image": image.file_name, "class": name})
    return queries


def _queries(spec: StudySpecCore, archive: Archive) -> list[dict]:
    categories = {c.name: c for c in Category.objects.filter(archive=archive)}
    if isinstance(spec.queries, QueriesDrawn):
        queries = _queries_drawn(spec.queries, archive, categories, spec.seed)
    else:
        queries = _queries_listed(spec.queries, archive, categories)
    target_count = spec.sizes.target_count
    for i, query in enumerate(queries):
        category = categories[query["class"]]
        if category.image_count - 1 < target_count:
            raise StudySpecError(
                f"queries[{i}].class",
                f"class {query['class']!r} is in {category.image_count} image(s) of the archive, "
                f"too few to find sizes.target_count = {target_count} besides the query",
            )
    return queries


def _task_pairs(spec: StudySpecCore, queries: list[dict]) -> dict:
    count = len(queries) if spec.task_pairs.count is None else spec.task_pairs.count
    try:
        comparisons = task_pair_comparisons(
            is_xai=[bool(c.method) for c in spec.conditions], design=spec.task_pairs.design
        )
        planned = task_pair_plan(
            query_classes=[q["class"] for q in queries],
            n_conditions=len(spec.conditions),
            comparisons=comparisons,
            count=count,
            seed=spec.seed,
        )
    except TaskPairError as exc:
        raise StudySpecError("task_pairs", str(exc)) from None
    if spec.hits is not None:
        try:
            pair_capacities(
                pairs=range(1, len(planned) + 1), repetitions=spec.repetitions, hits=spec.hits
            )
        except ValueError as exc:
            raise StudySpecError("hits", str(exc)) from None
    return {"count": count, "design": spec.task_pairs.design}


def _superclasses_queried(superclasses: dict, queries: list[dict]) -> None:
    classes = {q["class"] for q in queries}
    for key, names in superclasses.items():
        for i, name in enumerate(names):
            if name not in classes:
                raise StudySpecError(f"superclasses.{key}[{i}]", f"{name!r} is not a query class")


def study_spec_check(data: Any) -> StudySpecCore:
    """Check a parsed spec against the schema alone (no database): every field's type, range
    and choice, and the rules between fields.

    Raises
    ------
    StudySpecError
        Naming the first wrong field; ``problems`` lists them all.
    """
    try:
        return study_spec_model().model_validate(data)
    except ValidationError as exc:
        problems = spec_problems(exc)
        raise StudySpecError(*problems[0], problems=problems) from None


def study_spec_validate(data: Any) -> dict:
    """Validate a parsed spec against the schema and the database and return it normalised.

    Parameters
    ----------
    data : mapping
        A spec as parsed from YAML (or a normalised spec: validating one again gives it back).

    Returns
    -------
    dict
        The normalised spec (module docstring); a new object, ``data`` is not changed.

    Raises
    ------
    StudySpecError
        The first problem found, its message starting with the field's path.
    """
    spec = study_spec_check(data)
    normalised = spec.model_dump(mode="json", by_alias=True)
    archive = _archive(spec.archive)
    feature_set = _feature_set(spec.feature_set, archive)
    normalised["feature_set"] = {
        "backbone": BackboneConfig.from_dict(feature_set.backbone_config).to_dict()
    }
    n_images = Image.objects.filter(archive=archive).count()
    if spec.sizes.candidate_pool_size > n_images - 1:
        raise StudySpecError(
            "sizes.candidate_pool_size",
            f"{spec.sizes.candidate_pool_size} is more than the archive's {n_images} images "
            "minus the query",
        )
    normalised["queries"] = _queries(spec, archive)
    normalised["task_pairs"] = _task_pairs(spec, normalised["queries"])
    _superclasses_queried(normalised["superclasses"], normalised["queries"])
    return normalised


def study_spec_parse(path_or_text: str | Path) -> Any:
    """The YAML of a spec file (a ``Path``, or a one-line string naming a ``.yaml``/``.yml``/
    ``.json`` file) or of a spec text, parsed but not validated."""
    if isinstance(path_or_text, Path) or (
        isinstance(path_or_text, str)
        and "\n" not in path_or_text
        and path_or_text.strip().endswith((".yaml", ".yml", ".json"))
    ):
        path = Path(path_or_text)
        if not path.is_file():
            raise StudySpecError("", f"spec file {path} does not exist")
        text = path.read_text(encoding="utf-8")
        where = str(path)
    elif isinstance(path_or_text, str):
        text, where = path_or_text, "spec"
    else:
        raise StudySpecError(
            "", f"a spec is a file path or YAML text, got {type(path_or_text).__name__}"
        )
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise StudySpecError("", f"{where} is not valid YAML{at}: {problem}") from None


def study_spec_load(path_or_text: str | Path) -> dict:
    """Read, validate and normalise a study spec.

    Parameters
    ----------
    path_or_text : str or Path
        A spec file, or the YAML text of a spec.

    Returns
    -------
    dict
        The normalised spec (see the module docstring).

    Raises
    ------
    StudySpecError
        Unreadable file, invalid YAML (with its line), or a wrong field (with its path).
    """
    return study_spec_validate(study_spec_parse(path_or_text))


def study_spec_dump(spec: Mapping) -> str:
    """A spec as YAML text, keys in the order of the spec; ``study_spec_load`` reads it back."""
    return yaml.safe_dump(dict(spec), sort_keys=False, allow_unicode=True, width=100)
