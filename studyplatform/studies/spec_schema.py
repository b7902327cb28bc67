"""The study spec's schema: the studies core's fields, and the blocks other apps register.

One pydantic model checks every field's type, range and choice and the rules between fields
that need no database; ``services.specs`` then resolves the names (archive, feature set, query
images and classes) against the database. The blocks of other apps join the schema through
:func:`spec_block_register`, called from their ``AppConfig.ready()`` (``mturk`` registers
``mturk``, ``analysis`` registers ``analysis``), so this module imports none of them. The
condition methods are checked by the functions ``explain`` registers with
:func:`condition_methods_register`.

Adding a field is one line in its model (type, default, ``Field`` constraints and a
description) plus, for a rule beyond the type, a validator that raises :func:`problem` or
:func:`problem_at`. The reference in ``docs/study-spec.md`` is generated from these models
(``manage.py study_spec_reference``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    WithJsonSchema,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)

from .models import Question, Study
from .services.task_pairs import DESIGNS
from .spec_types import (
    UNION_TAGS,
    JsonData,
    Slug,
    SpecModel,
    Text,
    null_as,
    problem,
    problem_at,
)

__all__ = [
    "SpecBlock",
    "StudySpecCore",
    "condition_methods_register",
    "spec_block_register",
    "spec_blocks",
    "study_spec_model",
]

INT64 = 2**63
DISTANCES = tuple(Study.Distance.values)
SCALES = tuple(Question.Scale.values)
#: A questionnaire's ``for``: which sub-tasks it follows, as ``Questionnaire.for_xai``.
FOR = {"xai": True, "no_xai": False, "any": None}


# ---------------------------------------------------------------------------------------------
# Registries the other apps fill from their AppConfig.ready().
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecBlock:
    """A top-level block of the spec owned by another app; left out or ``{}``: not used.

    ``only_given``: the normalised block keeps only the fields the spec gave, not null
    (``analysis``: its defaults depend on the study), otherwise every default is filled in.
    """

    name: str
    model: type[SpecModel]
    description: str
    only_given: bool = False


_BLOCKS: dict[str, SpecBlock] = {}


@dataclass(frozen=True)
class _ConditionMethods:
    check_name: Callable[[str], None]
    check_config: Callable[[str, dict], None]


_METHODS: list[_ConditionMethods] = []


def spec_block_register(
    *, name: str, model: type[SpecModel], description: str, only_given: bool = False
) -> None:
    """Add ``model`` as the spec's top-level block ``name``; registering it again is a no-op.

    Raises
    ------
    ValueError
        ``name`` is a field of the core or another model's block.
    """
    if name in StudySpecCore.model_fields:
        raise ValueError(f"{name!r} is a field of the study spec's core")
    block = SpecBlock(name=name, model=model, description=description, only_given=only_given)
    if _BLOCKS.get(name, block) != block:
        raise ValueError(f"the spec block {name!r} is registered already")
    _BLOCKS[name] = block
    _composed.cache_clear()


def spec_blocks() -> dict[str, SpecBlock]:
    """The registered blocks by name, sorted."""
    return dict(sorted(_BLOCKS.items()))


def condition_methods_register(
    *, check_name: Callable[[str], None], check_config: Callable[[str, dict], None]
) -> None:
    """Set how a condition's ``method`` and ``config`` are checked: ``check_name(method)`` and
    ``check_config(method, config)`` raise ValueError (or TypeError) saying what is wrong."""
    _METHODS[:] = [_ConditionMethods(check_name=check_name, check_config=check_config)]


# ---------------------------------------------------------------------------------------------
# The core's fields.
# ---------------------------------------------------------------------------------------------


class Sizes(SpecModel):
    """How big a search task is (seed 000 section 4: 12 targets, 2 rounds of 20 results)."""

    target_count: int = Field(
        12, ge=1, le=32767, description="Instances of the query's class the worker must find."
    )
    iqr_rounds: int = Field(2, ge=0, le=100, description="Feedback (IQR) rounds after the first.")
    results_per_round: int = Field(20, ge=1, le=32767, description="Results shown per round.")
    candidate_pool_size: int = Field(
        200,
        ge=1,
        le=2**31 - 1,
        description="How deep into the ranking a round reaches; at least results_per_round, "
        "at most the archive's images minus the query.",
    )

    @model_validator(mode="after")
    def _pool_holds_a_round(self) -> Sizes:
        if self.candidate_pool_size < self.results_per_round:
            raise problem_at(
                "candidate_pool_size",
                message=f"{self.candidate_pool_size} is smaller than results_per_round "
                f"({self.results_per_round})",
            )
        return self


class SearchSpec(SpecModel):
    """What a refine re-ranks and how long a round may take (seed 001: IQR over the archive)."""

    scope: Literal["archive", "pool"] = Field(
        "archive",
        description="archive: IQR over the whole archive, maps of new results computed on "
        "demand (seed 001); pool: only the query's candidate pool, every map precomputed.",
    )
    working_set: Literal["neighbours", "all"] = Field(
        "neighbours",
        description="In the archive scope, what IQR ranks: SMQTK's 500 nearest images of each "
        "positive, or every image (through the HIK bucket codes).",
    )
    round_budget_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Latency budget of a refine round in seconds (click to results with maps); "
        "a round past it still waits for its exact maps and is recorded as over budget.",
    )
    warm_start_neighbours: int = Field(
        0,
        ge=0,
        le=1000,
        description="Before going live, also precompute the maps of this many nearest "
        "neighbours of each query's first results (the likely next results).",
    )


class ConditionSpec(SpecModel):
    """A condition: no ``method`` is no-XAI, otherwise an explanation method and its config."""

    name: Slug(50) = Field(description="Unique within the study.")
    label: Text(100) = Field("", description="What the researcher calls it.")
    method: Text(50) = Field("", description="A saliency method's name (explain's registry).")
    config: Annotated[JsonData, null_as({})] = Field({}, description="The method's parameters.")

    @field_validator("method")
    @classmethod
    def _method_known(cls, method: str) -> str:
        if method:
            if not _METHODS:
                raise problem("no explanation methods are installed")
            try:
                _METHODS[0].check_name(method)
            except ValueError as exc:
                raise problem(str(exc)) from None
        return method

    @model_validator(mode="after")
    def _config_fits_the_method(self) -> ConditionSpec:
        if not self.method:
            if self.config:
                raise problem_at("config", message="a no-XAI condition takes no config")
            return self
        if "method" in self.config:
            raise problem_at(
                "config", "method", message="name the method in the condition's 'method'"
            )
        try:
            _METHODS[0].check_config(self.method, dict(self.config))
        except (TypeError, ValueError) as exc:
            raise problem_at("config", message=str(exc)) from None
        return self


class QueriesDrawn(SpecModel):
    """Queries drawn, seeded, from the archive's annotations: ``per_class`` of each class, or
    ``total`` spread over the classes (the first classes of the list get one more)."""

    classes: list[Text(200, required=True)] = Field(min_length=1, description="Class names.")
    per_class: int | None = Field(None, ge=1, le=INT64 - 1, description="Queries per class.")
    total: int | None = Field(None, ge=1, le=INT64 - 1, description="Queries in all.")
    seed: int | None = Field(
        None, ge=-INT64, le=INT64 - 1, description="Seeds the draw (default: the study's seed)."
    )

    @field_validator("classes")
    @classmethod
    def _classes_once(cls, classes: list[str]) -> list[str]:
        for i, name in enumerate(classes):
            if name in classes[:i]:
                raise problem_at(i, message=f"{name!r} is listed twice")
        return classes

    @model_validator(mode="after")
    def _one_count(self) -> QueriesDrawn:
        if (self.per_class is None) == (self.total is None):
            raise problem("give either per_class or total")
        if self.total is not None and self.total < len(self.classes):
            raise problem_at("total", message=f"must be >= {len(self.classes)}, the classes")
        return self


class QueryListed(SpecModel):
    """One query image, by file name or COCO id, and the class to find."""

    image: Text(500) | None = Field(None, description="The image's file name in the archive.")
    image_id: int | None = Field(None, ge=-INT64, le=INT64 - 1, description="Its COCO id.")
    class_: Text(200, required=True) = Field(
        alias="class", description="The class to find; the image must hold an instance."
    )

    @model_validator(mode="after")
    def _image_named(self) -> QueryListed:
        if not self.image and self.image_id is None:
            raise problem("give the image's file name (image) or COCO id (image_id)")
        return self


UNION_TAGS.update({"drawn", "listed"})
Queries = Annotated[
    Annotated[QueriesDrawn, Tag("drawn")]
    | Annotated[list[QueryListed], Field(min_length=2), Tag("listed")],
    Discriminator(lambda value: "drawn" if isinstance(value, Mapping | QueriesDrawn) else "listed"),
]


def _feature_set_ref(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | str | Mapping):
        raise problem(f"must be a backbone config, name, key or id, got {value!r}")
    return value.strip() if isinstance(value, str) else value


FeatureSetRef = Annotated[
    Any,
    PlainValidator(_feature_set_ref),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "object", "description": "{backbone: {name, weights, ...}}"},
                {"type": "string", "description": "a backbone name or the 64-hex config key"},
                {"type": "integer", "description": "a database id"},
            ]
        }
    ),
]


class TaskPairs(SpecModel):
    """How many (no-XAI, with-XAI) task pairs, and which conditions are compared."""

    count: int | None = Field(
        None, ge=1, le=100_000, description="Pairs per compared condition pair (default: queries)."
    )
    design: Literal[DESIGNS] = Field(  # type: ignore[valid-type]
        "control_vs_treatment", description="Which condition pairs are compared."
    )


class QuestionSpec(SpecModel):
    """One question; ``code`` names it in the exports."""

    code: Slug(50) = Field(description="Unique within its questionnaire.")
    text: Text(2000, required=True) = Field(description="What the worker reads.")
    scale: Literal[SCALES] = Field("likert6", description="The answer's scale.")  # type: ignore[valid-type]
    required: bool = Field(True, description="Whether the worker must answer.")


class QuestionnaireSpec(SpecModel):
    """A questionnaire after each sub-task (for one kind of condition) or at the end."""

    kind: Literal["subtask", "final"] = Field(description="After a sub-task, or at the end.")
    for_: Literal[tuple(FOR)] = Field(  # type: ignore[valid-type]
        "any", alias="for", description="Which sub-tasks: with XAI, without, or any."
    )
    title: Text(200) = Field("", description="Shown above the questions.")
    questions: list[QuestionSpec] = Field(min_length=1, description="In the order shown.")

    @field_validator("for_")
    @classmethod
    def _final_for_all(cls, for_: str, info) -> str:
        if info.data.get("kind") == "final" and for_ != "any":
            raise problem("the final questionnaire is for every worker")
        return for_

    @field_validator("questions")
    @classmethod
    def _codes_once(cls, questions: list[QuestionSpec]) -> list[QuestionSpec]:
        codes = [q.code for q in questions]
        for j, code in enumerate(codes):
            if code in codes[:j]:
                raise problem_at(j, "code", message=f"{code!r} is used twice")
        return questions


class Superclasses(SpecModel):
    """Query classes overriding seed 001 section 5.1's split computed from the archive."""

    cluttered: list[Text(200, required=True)] = Field(
        description="The cluttered classes (the rest are uncluttered)."
    )
    large: list[Text(200, required=True)] = Field(
        description="The large classes (the rest are small)."
    )

    @field_validator("cluttered", "large")
    @classmethod
    def _once_each(cls, names: list[str]) -> list[str]:
        return list(dict.fromkeys(names))


class LabSpec(SpecModel):
    """Lab mode: participants open the study at ``/lab/<slug>/`` with a code instead of MTurk."""

    enabled: bool = Field(
        False, description="Open the lab page; off, it refuses every code (MTurk only)."
    )
    codes: list[Text(64, required=True)] = Field(
        [],
        description="The participant codes the researcher hands out; empty: any code of 1-64 "
        "letters, digits, '-' or '_' (each code still does the study once).",
    )

    @field_validator("codes")
    @classmethod
    def _codes_fit(cls, codes: list[str]) -> list[str]:
        for i, code in enumerate(codes):
            if not re.match(r"^[A-Za-z0-9_-]{1,64}$", code):
                raise problem_at(i, message="use 1-64 letters, digits, '-' or '_'")
        return list(dict.fromkeys(codes))


class StudySpecCore(SpecModel):
    """The study spec's own fields; ``mturk`` and ``analysis`` are blocks other apps add."""

    slug: Slug(100) = Field(description="The study's name in URLs and commands.")
    title: Text(200, required=True) = Field(description="The researcher's title.")
    description: Text(10_000) = Field("", description="What the study is about.")
    archive: Text(200, required=True) = Field(description="An archive's name.")
    feature_set: FeatureSetRef = Field(
        description="The archive's feature set: a backbone config, backbone name, config key "
        "or id; normalised to {backbone: <full config>}."
    )
    distance: Literal[DISTANCES] = Field("hik", description="Distance of the search.")  # type: ignore[valid-type]
    sizes: Annotated[Sizes, null_as({})] = Field(
        Sizes(), description="Targets, rounds and results."
    )
    search: Annotated[SearchSpec, null_as({})] = Field(
        SearchSpec(), description="Refine rounds: scope, working set, latency budget, warm start."
    )
    repetitions: int = Field(
        3,
        ge=1,
        le=1000,
        description="Distinct workers per task pair, both orders together (seed 001: at least 3).",
    )
    hits: int | None = Field(
        None,
        ge=1,
        le=10_000_000,
        description="HITs in all: repetitions per pair, and one more worker on as many pairs "
        "(drawn with the seed) as reach this total (seed 001: 148 pairs x 3 + 32 = 476).",
    )
    order: Literal["balanced", "random"] = Field(
        "balanced",
        description="Order of a HIT's two conditions: balanced within each pair (the orders "
        "differ by at most one), or random per HIT from a seed kept on the assignment (seed "
        "001).",
    )
    assignment_timeout_minutes: int = Field(
        60, ge=1, le=2**31 - 1, description="An active assignment idle this long frees its cell."
    )
    seed: int = Field(
        0, ge=-INT64, le=INT64 - 1, description="Seeds query sampling and task-pair generation."
    )
    conditions: list[ConditionSpec] = Field(min_length=2, description="2 or more conditions.")
    queries: Queries = Field(
        description="A list of query images, or classes to draw them from; normalised to the "
        "list [{image_id, image, class}]."
    )
    task_pairs: Annotated[TaskPairs, null_as({})] = Field(TaskPairs(), description="Task pairs.")
    questionnaires: Annotated[list[QuestionnaireSpec], null_as([])] = Field(
        [],
        description="At most one sub-task questionnaire per kind of condition, one final.",
    )
    superclasses: Annotated[Superclasses | None, BeforeValidator(lambda value: value or None)] = (
        Field(None, description="Superclass override; {} or left out: from the archive.")
    )
    tutorial: Annotated[JsonData, null_as({})] = Field(
        {}, description="Kept as given for the HIT pages."
    )
    stop: Literal["at_target", "at_least"] = Field(
        "at_target",
        description="at_target: a task ends when target_count images are marked relevant; "
        "at_least (seed 001, 'find at least 12'): the worker may go on past the target and "
        "finishes by choice, within the rounds and task_time_limit_minutes.",
    )
    task_time_limit_minutes: int | None = Field(
        None,
        ge=1,
        le=24 * 60,
        description="A search task's time from its first results; past it the task ends.",
    )

    @model_validator(mode="after")
    def _at_least_has_a_limit(self) -> StudySpecCore:
        if (
            self.stop == "at_least"
            and self.sizes.iqr_rounds == 0
            and self.task_time_limit_minutes is None
        ):
            raise problem_at(
                "stop",
                message="at_least lets a worker search past the target until they choose to "
                "finish; it needs a limit: sizes.iqr_rounds >= 1 or task_time_limit_minutes",
            )
        return self

    lab: Annotated[LabSpec, null_as({})] = Field(LabSpec(), description="Lab mode.")

    @field_validator("conditions")
    @classmethod
    def _names_once(cls, conditions: list[ConditionSpec]) -> list[ConditionSpec]:
        names = [c.name for c in conditions]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise problem_at(i, "name", message=f"{name!r} is used twice")
        return conditions

    @field_validator("questionnaires")
    @classmethod
    def _one_per_worker(cls, items: list[QuestionnaireSpec]) -> list[QuestionnaireSpec]:
        taken: dict[tuple[str, str], int] = {}
        for i, item in enumerate(items):
            clashes = [(item.kind, item.for_)]
            if item.kind == "subtask":
                clashes += (
                    [("subtask", "any")]
                    if item.for_ != "any"
                    else [
                        ("subtask", "xai"),
                        ("subtask", "no_xai"),
                    ]
                )
            for clash in clashes:
                if clash in taken:
                    raise problem_at(
                        i, message=f"questionnaires[{taken[clash]}] already covers these workers"
                    )
            taken[(item.kind, item.for_)] = i
        return items

    @model_serializer(mode="wrap")
    def _blocks_as_mappings(self, handler: Callable) -> dict:
        data = handler(self)
        data["superclasses"] = data.get("superclasses") or {}
        for name, block in spec_blocks().items():
            value = getattr(self, name, None)
            data[name] = (
                {}
                if value is None
                else value.model_dump(
                    mode="json",
                    by_alias=True,
                    exclude_unset=block.only_given,
                    exclude_none=block.only_given,
                )
            )
        return data


def _empty_block(value: Any) -> Any:
    return None if value is None or (isinstance(value, Mapping) and not value) else value


@functools.cache
def _composed(names: tuple[str, ...]) -> type[StudySpecCore]:
    blocks = {name: _BLOCKS[name] for name in names}
    fields = {
        name: (
            Annotated[block.model | None, BeforeValidator(_empty_block)],
            Field(None, description=block.description),
        )
        for name, block in blocks.items()
    }
    return create_model(
        "StudySpec", __base__=StudySpecCore, __doc__=StudySpecCore.__doc__, **fields
    )


def study_spec_model() -> type[StudySpecCore]:
    """The whole spec's model: the core and every registered block."""
    return _composed(tuple(spec_blocks()))
