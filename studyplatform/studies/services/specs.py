"""Study specs: the YAML a researcher writes, validated field by field and normalised.

:func:`study_spec_load` reads a spec (a file path or the YAML text) and returns the normalised
spec, a plain JSON-able dict with every default filled in and every reference resolved against
the database; any problem raises :class:`StudySpecError`, whose message starts with the path of
the offending field (``conditions[1].config: unknown parameters ['blok'] ...``). The normalised
spec is what ``study_create_from_spec`` builds from and what ``study_spec_export`` gives back,
so ``study_spec_load(export(create(spec))) == study_spec_load(spec)``.

The fields (see ``fixtures/studies/demo.yaml`` and ``seed001.yaml`` for whole specs):

``slug``, ``title`` (required), ``description``
``archive`` (required): an archive name.
``feature_set`` (required): the feature set of that archive the study searches with, given as
    ``{backbone: {name: synthnet, weights: fixture, image_size: 128}}`` (a backbone config,
    defaults filled in as ``retrieval.backbones.BackboneConfig`` does), a backbone name such as
    ``synthnet`` when the archive has one feature set of that backbone, the 64-hex config key, or
    a database id. It is normalised to ``{backbone: <full config>}``, which names the same
    features on any installation.
``distance``: ``hik`` (default), ``l2`` or ``cosine``.
``sizes``: ``target_count`` (12), ``iqr_rounds`` (2), ``results_per_round`` (20),
    ``candidate_pool_size`` (200, at least ``results_per_round``, at most the archive's images).
``repetitions`` (3): distinct workers per (task pair, order) cell.
``assignment_timeout_minutes`` (60): an active assignment idle this long frees its cell.
``seed`` (0): seeds query sampling and task-pair generation.
``conditions`` (required, 2 or more): ``{name, label, method, config}``; no ``method`` means
    no-XAI; ``method`` is a name in ``explain.registry`` and ``config`` its parameters (the
    method is built from them to check them). The backbone's normalisation is filled in when
    the maps are computed (``explain.services``), not here.
``queries`` (required): a list of ``{image: <file name>}`` or ``{image_id: <COCO image id>}``
    each with ``class: <category name>`` (the image must hold an instance of the class), or
    ``{classes: [...], per_class: N}`` / ``{classes: [...], total: N}`` to draw them, seeded,
    from the archive's annotations (``total`` spreads N over the classes, the first classes of
    the list getting one more). Normalised to the explicit list ``{image_id, image, class}``.
``task_pairs``: ``count`` (pairs per compared condition pair; default the number of queries)
    and ``design`` (``control_vs_treatment`` or ``all_pairs``, see ``services.task_pairs``).
``questionnaires``: a list of ``{kind: subtask|final, for: xai|no_xai|any, title, questions}``;
    each question ``{code, text, scale: likert6|likert5|text, required}`` (6-point Likert by
    default). At most one sub-task questionnaire applies to each kind of condition.
``superclasses``: ``{cluttered: [...], large: [...]}``, query classes overriding the split of
    seed 001 section 5.1 computed from the archive's statistics.
``tutorial``: a mapping kept as given for the HIT pages.
``mturk``: the HIT settings, kept as JSON: ``title``, ``description``, ``keywords``,
    ``reward`` (US dollars, as a string such as ``"2.50"``), ``lifetime_hours`` (how long the
    HIT is listed), ``assignment_duration_minutes`` (how long a worker may hold it),
    ``auto_approval_delay_hours``, ``frame_height`` (pixels of the ExternalQuestion frame) and
    ``qualifications`` (``locales``, ``approved_hits_at_least``, ``approval_rate_above``,
    ``exclude_participated``, ``exclude_participated_any_study``, ``masters``, ``custom``: a list
    of ``{qualification_type_id, comparator, integer_values}``); ``planned_bonus`` (dollars) and
    ``production`` (false: the sandbox; real money needs ``true``), read by ``mturk``. Empty for
    a lab-only study.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from retrieval.backbones import BackboneConfig
from retrieval.models import Annotation, Archive, Category, FeatureSet, Image
from retrieval.services.features import backbone_config_key

from ..models import Question, Study
from .task_pairs import DESIGNS, TaskPairError, task_pair_comparisons, task_pair_plan

__all__ = [
    "StudySpecError",
    "study_spec_dump",
    "study_spec_load",
    "study_spec_validate",
]

_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_FOR = {"xai": True, "no_xai": False, "any": None}


class StudySpecError(ValueError):
    """A spec field is missing or wrong; ``path`` names it (``queries[3].class``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


# ---------------------------------------------------------------------------------------------
# Small typed readers; each names the field it reads.
# ---------------------------------------------------------------------------------------------


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _mapping(
    value: Any, path: str, *, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()
) -> dict:
    if not isinstance(value, Mapping):
        raise StudySpecError(path, f"must be a mapping, got {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in required + optional)
    if unknown:
        raise StudySpecError(
            path, f"unknown field(s) {unknown}; valid: {sorted(required + optional)}"
        )
    missing = [k for k in required if k not in value]
    if missing:
        raise StudySpecError(_join(path, missing[0]), "is required")
    return dict(value)


def _int(value: Any, path: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StudySpecError(path, f"must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise StudySpecError(path, f"must be {bound}, got {value}")
    return value


def _str(value: Any, path: str, *, max_length: int = 200, empty: bool = True) -> str:
    if value is None and empty:
        return ""
    if not isinstance(value, str):
        raise StudySpecError(path, f"must be a string, got {type(value).__name__}")
    value = value.strip()
    if not value and not empty:
        raise StudySpecError(path, "must not be empty")
    if len(value) > max_length:
        raise StudySpecError(path, f"is longer than {max_length} characters")
    return value


def _slug(value: Any, path: str, *, max_length: int) -> str:
    value = _str(value, path, max_length=max_length, empty=False)
    if not _SLUG.match(value):
        raise StudySpecError(path, f"must hold only letters, digits, '-' and '_', got {value!r}")
    return value


def _list(value: Any, path: str, *, min_length: int = 0) -> list:
    if not isinstance(value, list):
        raise StudySpecError(path, f"must be a list, got {type(value).__name__}")
    if len(value) < min_length:
        raise StudySpecError(path, f"needs at least {min_length} item(s), got {len(value)}")
    return value


def _str_list(value: Any, path: str) -> list[str]:
    return [_str(v, _join(path, i), empty=False) for i, v in enumerate(_list(value, path))]


def _amount(value: Any, path: str, *, allow_zero: bool) -> str:
    """US dollars in whole cents as a string ("2.50")."""
    text = str(value).strip() if isinstance(value, str | int | float | Decimal) else ""
    try:
        amount = Decimal(text)
    except InvalidOperation:
        amount = None
    if (
        amount is None
        or isinstance(value, bool)
        or not amount.is_finite()
        or amount < 0
        or (amount == 0 and not allow_zero)
        or amount != amount.quantize(Decimal("0.01"))
    ):
        least = "0.00" if allow_zero else "0.01"
        raise StudySpecError(
            path, f"must be dollars in whole cents, at least {least}; got {value!r}"
        )
    return f"{amount:.2f}"


def _json_able(value: Any, path: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise StudySpecError(path, f"must be plain data (JSON-able): {exc}") from None


# ---------------------------------------------------------------------------------------------
# Sections.
# ---------------------------------------------------------------------------------------------


def _archive(value: Any) -> Archive:
    name = _str(value, "archive", empty=False)
    archive = Archive.objects.filter(name=name).first()
    if archive is None:
        known = list(Archive.objects.order_by("name").values_list("name", flat=True)[:20])
        raise StudySpecError("archive", f"no archive named {name!r}; known: {known}")
    return archive


def _feature_set(value: Any, archive: Archive) -> FeatureSet:
    path = "feature_set"
    sets = FeatureSet.objects.filter(archive=archive)
    if isinstance(value, bool):
        raise StudySpecError(path, f"must be a backbone config, name, key or id, got {value!r}")
    if isinstance(value, int):
        found = sets.filter(pk=value).first()
        if found is None:
            raise StudySpecError(
                path, f"archive {archive.name!r} has no feature set with id {value}"
            )
        return found
    if isinstance(value, str):
        value = value.strip()
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
    if isinstance(value, Mapping):
        config = value["backbone"] if set(value) == {"backbone"} else value
        config_path = _join(path, "backbone") if config is not value else path
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
    raise StudySpecError(path, f"must be a backbone config, name, key or id, got {value!r}")


def _sizes(value: Any, n_images: int) -> dict:
    path = "sizes"
    fields = _mapping(
        value or {},
        path,
        optional=("target_count", "iqr_rounds", "results_per_round", "candidate_pool_size"),
    )
    sizes = {
        "target_count": _int(fields.get("target_count", 12), "sizes.target_count", minimum=1),
        "iqr_rounds": _int(fields.get("iqr_rounds", 2), "sizes.iqr_rounds", maximum=100),
        "results_per_round": _int(
            fields.get("results_per_round", 20), "sizes.results_per_round", minimum=1
        ),
    }
    pool = _int(fields.get("candidate_pool_size", 200), "sizes.candidate_pool_size", minimum=1)
    if pool < sizes["results_per_round"]:
        raise StudySpecError(
            "sizes.candidate_pool_size",
            f"{pool} is smaller than results_per_round ({sizes['results_per_round']})",
        )
    if pool > n_images - 1:
        raise StudySpecError(
            "sizes.candidate_pool_size",
            f"{pool} is more than the archive's {n_images} images minus the query",
        )
    sizes["candidate_pool_size"] = pool
    for name in ("target_count", "iqr_rounds", "results_per_round"):
        if sizes[name] > 32767:
            raise StudySpecError(f"sizes.{name}", f"must be <= 32767, got {sizes[name]}")
    return sizes


def _conditions(value: Any) -> list[dict]:
    from explain.registry import get_method, method_from_config

    items = _list(value, "conditions", min_length=2)
    conditions = []
    for i, item in enumerate(items):
        path = _join("conditions", i)
        fields = _mapping(item, path, required=("name",), optional=("label", "method", "config"))
        name = _slug(fields["name"], _join(path, "name"), max_length=50)
        method = _str(fields.get("method"), _join(path, "method"), max_length=50)
        config = fields.get("config") or {}
        if not isinstance(config, Mapping):
            raise StudySpecError(_join(path, "config"), "must be a mapping of method parameters")
        config = _json_able(dict(config), _join(path, "config"))
        if not method:
            if config:
                raise StudySpecError(_join(path, "config"), "a no-XAI condition takes no config")
        else:
            try:
                get_method(method)
            except ValueError as exc:
                raise StudySpecError(_join(path, "method"), str(exc)) from None
            if "method" in config:
                raise StudySpecError(
                    _join(path, "config.method"), "name the method in the condition's 'method'"
                )
            try:
                method_from_config({"method": method, **config})
            except (TypeError, ValueError) as exc:
                raise StudySpecError(_join(path, "config"), str(exc)) from None
        conditions.append(
            {
                "name": name,
                "label": _str(fields.get("label"), _join(path, "label"), max_length=100),
                "method": method,
                "config": config,
            }
        )
    names = [c["name"] for c in conditions]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise StudySpecError(_join(_join("conditions", i), "name"), f"{name!r} is used twice")
    return conditions


def _categories(archive: Archive) -> dict[str, Category]:
    return {c.name: c for c in Category.objects.filter(archive=archive)}


def _query_classes(value: Any, path: str, categories: dict[str, Category]) -> list[str]:
    names = _str_list(value, path)
    if not names:
        raise StudySpecError(path, "needs at least one class")
    for i, name in enumerate(names):
        if name not in categories:
            raise StudySpecError(_join(path, i), f"the archive has no class named {name!r}")
        if name in names[:i]:
            raise StudySpecError(_join(path, i), f"{name!r} is listed twice")
    return names


def _queries_sampled(fields: dict, archive: Archive, categories: dict, seed: int) -> list[dict]:
    classes = _query_classes(fields["classes"], "queries.classes", categories)
    if ("per_class" in fields) == ("total" in fields):
        raise StudySpecError("queries", "give either per_class or total")
    if "per_class" in fields:
        wanted = [_int(fields["per_class"], "queries.per_class", minimum=1)] * len(classes)
    else:
        total = _int(fields["total"], "queries.total", minimum=len(classes))
        base, extra = divmod(total, len(classes))
        wanted = [base + (1 if i < extra else 0) for i in range(len(classes))]
    seed = _int(fields.get("seed", seed), "queries.seed", minimum=-(2**63))
    rng = random.Random(seed)
    taken: set[int] = set()
    queries = []
    for name, n in zip(classes, wanted, strict=True):
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


def _queries_listed(items: list, archive: Archive, categories: dict) -> list[dict]:
    queries = []
    seen: dict[int, int] = {}
    for i, item in enumerate(items):
        path = _join("queries", i)
        fields = _mapping(item, path, required=("class",), optional=("image", "image_id"))
        if "image" not in fields and "image_id" not in fields:
            raise StudySpecError(path, "give the image's file name (image) or COCO id (image_id)")
        images = Image.objects.filter(archive=archive)
        if "image_id" in fields:
            coco_id = _int(fields["image_id"], _join(path, "image_id"), minimum=-(2**63))
            images = images.filter(coco_id=coco_id)
        if "image" in fields:
            images = images.filter(
                file_name=_str(fields["image"], _join(path, "image"), max_length=500, empty=False)
            )
        found = list(images[:2])
        where = _join(path, "image_id" if "image_id" in fields else "image")
        if not found:
            raise StudySpecError(where, f"archive {archive.name!r} has no such image")
        if len(found) > 1:
            raise StudySpecError(where, "names several images; give image_id")
        image = found[0]
        name = _str(fields["class"], _join(path, "class"), empty=False)
        if name not in categories:
            raise StudySpecError(_join(path, "class"), f"the archive has no class named {name!r}")
        if not Annotation.objects.filter(image=image, category=categories[name]).exists():
            raise StudySpecError(
                _join(path, "class"), f"image {image.file_name} holds no {name!r} instance"
            )
        if image.pk in seen:
            raise StudySpecError(
                path, f"image {image.file_name} is already queries[{seen[image.pk]}]"
            )
        seen[image.pk] = i
        queries.append({"image_id": image.coco_id, "image": image.file_name, "class": name})
    return queries


def _queries(value: Any, archive: Archive, target_count: int, seed: int) -> list[dict]:
    categories = _categories(archive)
    if isinstance(value, Mapping):
        fields = _mapping(
            value, "queries", required=("classes",), optional=("per_class", "total", "seed")
        )
        queries = _queries_sampled(fields, archive, categories, seed)
    else:
        queries = _queries_listed(_list(value, "queries", min_length=2), archive, categories)
    for i, query in enumerate(queries):
        category = categories[query["class"]]
        if category.image_count - 1 < target_count:
            raise StudySpecError(
                _join(_join("queries", i), "class"),
                f"class {query['class']!r} is in {category.image_count} image(s) of the archive, "
                f"too few to find sizes.target_count = {target_count} besides the query",
            )
    return queries


def _task_pairs(value: Any, conditions: list[dict], queries: list[dict], seed: int) -> dict:
    fields = _mapping(value or {}, "task_pairs", optional=("count", "design"))
    count = _int(fields.get("count", len(queries)), "task_pairs.count", minimum=1, maximum=100_000)
    design = _str(fields.get("design", "control_vs_treatment"), "task_pairs.design", empty=False)
    if design not in DESIGNS:
        raise StudySpecError("task_pairs.design", f"must be one of {list(DESIGNS)}, got {design!r}")
    try:
        comparisons = task_pair_comparisons(
            is_xai=[bool(c["method"]) for c in conditions], design=design
        )
        task_pair_plan(
            query_classes=[q["class"] for q in queries],
            n_conditions=len(conditions),
            comparisons=comparisons,
            count=count,
            seed=seed,
        )
    except TaskPairError as exc:
        raise StudySpecError("task_pairs", str(exc)) from None
    return {"count": count, "design": design}


def _questionnaires(value: Any) -> list[dict]:
    items = _list(value or [], "questionnaires")
    scales = [choice for choice, _ in Question.Scale.choices]
    result = []
    taken: dict[tuple[str, str], int] = {}
    for i, item in enumerate(items):
        path = _join("questionnaires", i)
        fields = _mapping(item, path, required=("kind", "questions"), optional=("for", "title"))
        kind = _str(fields["kind"], _join(path, "kind"), empty=False)
        if kind not in ("subtask", "final"):
            raise StudySpecError(_join(path, "kind"), f"must be 'subtask' or 'final', got {kind!r}")
        for_ = _str(fields.get("for", "any"), _join(path, "for"), empty=False)
        if for_ not in _FOR:
            raise StudySpecError(_join(path, "for"), f"must be one of {list(_FOR)}, got {for_!r}")
        if kind == "final" and for_ != "any":
            raise StudySpecError(_join(path, "for"), "the final questionnaire is for every worker")
        clashes = [(kind, for_)] if kind == "final" else [(kind, for_), (kind, "any")]
        if for_ == "any" and kind == "subtask":
            clashes += [(kind, "xai"), (kind, "no_xai")]
        for clash in clashes:
            if clash in taken:
                raise StudySpecError(
                    path, f"questionnaires[{taken[clash]}] already covers these workers"
                )
        taken[(kind, for_)] = i
        questions = []
        for j, q in enumerate(_list(fields["questions"], _join(path, "questions"), min_length=1)):
            qpath = _join(_join(path, "questions"), j)
            qfields = _mapping(q, qpath, required=("code", "text"), optional=("scale", "required"))
            scale = _str(qfields.get("scale", "likert6"), _join(qpath, "scale"), empty=False)
            if scale not in scales:
                raise StudySpecError(
                    _join(qpath, "scale"), f"must be one of {scales}, got {scale!r}"
                )
            required = qfields.get("required", True)
            if not isinstance(required, bool):
                raise StudySpecError(
                    _join(qpath, "required"), f"must be true or false, got {required!r}"
                )
            code = _slug(qfields["code"], _join(qpath, "code"), max_length=50)
            if any(code == other["code"] for other in questions):
                raise StudySpecError(_join(qpath, "code"), f"{code!r} is used twice")
            questions.append(
                {
                    "code": code,
                    "text": _str(
                        qfields["text"], _join(qpath, "text"), max_length=2000, empty=False
                    ),
                    "scale": scale,
                    "required": required,
                }
            )
        result.append(
            {
                "kind": kind,
                "for": for_,
                "title": _str(fields.get("title"), _join(path, "title")),
                "questions": questions,
            }
        )
    return result


def _superclasses(value: Any, queries: list[dict]) -> dict:
    if not value:
        return {}
    fields = _mapping(value, "superclasses", required=("cluttered", "large"))
    classes = {q["class"] for q in queries}
    result = {}
    for key in ("cluttered", "large"):
        names = _str_list(fields[key], _join("superclasses", key))
        for i, name in enumerate(names):
            if name not in classes:
                raise StudySpecError(
                    _join(_join("superclasses", key), i), f"{name!r} is not a query class"
                )
        result[key] = list(dict.fromkeys(names))
    return result


_ANALYSIS_GROUPS = ("Cluttered", "Uncluttered", "Large", "Small")


def _analysis(value: Any) -> dict:
    """Options of ``analysis.services.analysis_run``; only the keys given are kept."""
    if not value:
        return {}
    fields = _mapping(
        value,
        "analysis",
        optional=(
            "permutations",
            "alternative",
            "seed",
            "groups",
            "adjudications",
            "pseudonym_salt",
            "preference_question",
        ),
    )
    result: dict[str, Any] = {}
    if "permutations" in fields:
        result["permutations"] = _int(
            fields["permutations"], "analysis.permutations", minimum=1, maximum=1_000_000
        )
    choices = {
        "alternative": ("greater", "less", "two-sided"),
        "adjudications": ("every", "final"),
    }
    for key, allowed in choices.items():
        if key in fields:
            if fields[key] not in allowed:
                raise StudySpecError(
                    f"analysis.{key}", f"must be one of {list(allowed)}, got {fields[key]!r}"
                )
            result[key] = fields[key]
    if "seed" in fields:
        result["seed"] = _int(fields["seed"], "analysis.seed", minimum=0, maximum=2**32 - 1)
    if "groups" in fields:
        groups = _str_list(fields["groups"], "analysis.groups")
        for i, group in enumerate(groups):
            if group not in _ANALYSIS_GROUPS:
                raise StudySpecError(
                    f"analysis.groups[{i}]", f"must be one of {list(_ANALYSIS_GROUPS)}"
                )
        result["groups"] = groups
    for key in ("pseudonym_salt", "preference_question"):
        if key in fields:
            result[key] = _str(fields[key], f"analysis.{key}", empty=False)
    return result


def _mturk(value: Any) -> dict:
    if not value:
        return {}
    path = "mturk"
    fields = _mapping(
        value,
        path,
        required=("title", "reward"),
        optional=(
            "description",
            "keywords",
            "lifetime_hours",
            "assignment_duration_minutes",
            "auto_approval_delay_hours",
            "frame_height",
            "qualifications",
            "planned_bonus",
            "production",
        ),
    )
    reward = _amount(fields["reward"], "mturk.reward", allow_zero=False)
    bonus = _amount(fields.get("planned_bonus", "0"), "mturk.planned_bonus", allow_zero=True)
    production = fields.get("production", False)
    if not isinstance(production, bool):
        raise StudySpecError("mturk.production", "must be true or false")
    keywords = fields.get("keywords", [])
    if isinstance(keywords, str):
        keywords = [k.strip() for k in keywords.split(",") if k.strip()]
    keywords = _str_list(keywords, "mturk.keywords")
    quals = _mapping(
        fields.get("qualifications") or {},
        "mturk.qualifications",
        optional=(
            "locales",
            "approved_hits_at_least",
            "approval_rate_above",
            "exclude_participated",
            "exclude_participated_any_study",
            "masters",
            "custom",
        ),
    )
    locales = _str_list(quals.get("locales", []), "mturk.qualifications.locales")
    for i, locale in enumerate(locales):
        if not re.match(r"^[A-Z]{2}$", locale):
            raise StudySpecError(
                f"mturk.qualifications.locales[{i}]",
                f"must be an ISO 3166 country code such as US, got {locale!r}",
            )
    flags = {}
    for key, default in (
        ("exclude_participated", True),
        ("exclude_participated_any_study", False),
        ("masters", False),
    ):
        flags[key] = quals.get(key, default)
        if not isinstance(flags[key], bool):
            raise StudySpecError(f"mturk.qualifications.{key}", "must be true or false")
    custom = _list(quals.get("custom", []), "mturk.qualifications.custom")
    for i, item in enumerate(custom):
        path = f"mturk.qualifications.custom[{i}]"
        item = _mapping(
            item,
            path,
            required=("qualification_type_id",),
            optional=("comparator", "integer_values"),
        )
        if not re.match(r"^[A-Z0-9]{1,64}$", str(item["qualification_type_id"])):
            raise StudySpecError(f"{path}.qualification_type_id", "must be 1-64 of A-Z, 0-9")
    at_least = quals.get("approved_hits_at_least")
    above = quals.get("approval_rate_above")
    return {
        "title": _str(fields["title"], "mturk.title", max_length=128, empty=False),
        "description": _str(fields.get("description"), "mturk.description", max_length=2000),
        "keywords": keywords,
        "reward": reward,
        "planned_bonus": bonus,
        "production": production,
        "lifetime_hours": _int(
            fields.get("lifetime_hours", 72), "mturk.lifetime_hours", minimum=1, maximum=24 * 365
        ),
        "assignment_duration_minutes": _int(
            fields.get("assignment_duration_minutes", 60),
            "mturk.assignment_duration_minutes",
            minimum=1,
            maximum=24 * 60 * 365,
        ),
        "auto_approval_delay_hours": _int(
            fields.get("auto_approval_delay_hours", 72),
            "mturk.auto_approval_delay_hours",
            maximum=24 * 30,
        ),
        "frame_height": _int(fields.get("frame_height", 900), "mturk.frame_height", maximum=10_000),
        "qualifications": {
            "locales": locales,
            "approved_hits_at_least": None
            if at_least is None
            else _int(at_least, "mturk.qualifications.approved_hits_at_least"),
            "approval_rate_above": None
            if above is None
            else _int(above, "mturk.qualifications.approval_rate_above", maximum=99),
            **flags,
            "custom": _json_able(custom, "mturk.qualifications.custom"),
        },
    }


# ---------------------------------------------------------------------------------------------
# Entry points.
# ---------------------------------------------------------------------------------------------

_TOP_REQUIRED = ("slug", "title", "archive", "feature_set", "conditions", "queries")
_TOP_OPTIONAL = (
    "description",
    "distance",
    "sizes",
    "repetitions",
    "assignment_timeout_minutes",
    "seed",
    "task_pairs",
    "questionnaires",
    "superclasses",
    "tutorial",
    "mturk",
    "analysis",
)


def study_spec_validate(data: Any) -> dict:
    """Validate a parsed spec against the database and return it normalised.

    Parameters
    ----------
    data : mapping
        A spec as parsed from YAML (or a normalised spec: validating one again gives it back).

    Returns
    -------
    dict
        The normalised spec (see the module docstring); a new object, ``data`` is not changed.

    Raises
    ------
    StudySpecError
        The first problem found, its message starting with the field's path.
    """
    fields = _mapping(data, "", required=_TOP_REQUIRED, optional=_TOP_OPTIONAL)
    fields = copy.deepcopy(fields)
    spec: dict[str, Any] = {
        "slug": _slug(fields["slug"], "slug", max_length=100),
        "title": _str(fields["title"], "title", empty=False),
        "description": _str(fields.get("description"), "description", max_length=10_000),
    }
    archive = _archive(fields["archive"])
    spec["archive"] = archive.name
    feature_set = _feature_set(fields["feature_set"], archive)
    spec["feature_set"] = {
        "backbone": BackboneConfig.from_dict(feature_set.backbone_config).to_dict()
    }
    distance = _str(fields.get("distance", "hik"), "distance", empty=False)
    distances = [choice for choice, _ in Study.Distance.choices]
    if distance not in distances:
        raise StudySpecError("distance", f"must be one of {distances}, got {distance!r}")
    spec["distance"] = distance
    n_images = Image.objects.filter(archive=archive).count()
    spec["sizes"] = _sizes(fields.get("sizes"), n_images)
    spec["repetitions"] = _int(fields.get("repetitions", 3), "repetitions", minimum=1, maximum=1000)
    spec["assignment_timeout_minutes"] = _int(
        fields.get("assignment_timeout_minutes", 60), "assignment_timeout_minutes", minimum=1
    )
    spec["seed"] = _int(fields.get("seed", 0), "seed", minimum=-(2**63), maximum=2**63 - 1)
    spec["conditions"] = _conditions(fields["conditions"])
    spec["queries"] = _queries(
        fields["queries"], archive, spec["sizes"]["target_count"], spec["seed"]
    )
    spec["task_pairs"] = _task_pairs(
        fields.get("task_pairs"), spec["conditions"], spec["queries"], spec["seed"]
    )
    spec["questionnaires"] = _questionnaires(fields.get("questionnaires"))
    spec["superclasses"] = _superclasses(fields.get("superclasses"), spec["queries"])
    tutorial = fields.get("tutorial") or {}
    if not isinstance(tutorial, Mapping):
        raise StudySpecError("tutorial", "must be a mapping")
    spec["tutorial"] = _json_able(dict(tutorial), "tutorial")
    spec["mturk"] = _mturk(fields.get("mturk"))
    spec["analysis"] = _analysis(fields.get("analysis"))
    return spec


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
