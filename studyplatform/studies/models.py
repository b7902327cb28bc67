"""Study models: a within-subject study, its conditions, query images and task pairs, the
workers who take part, their assignments and search tasks, and every event they cause.

Seed 001 section 4: each worker does one task pair, two image-search tasks with different
target classes, one per condition, in counterbalanced order. The invariants the protocol needs
are database constraints here (STYLE habit 3); the rules that span rows (a worker never sees a
class twice in a study, the emptiest cell first) live in ``studyplatform.studies.services``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class Study(models.Model):
    """A study over one archive and feature set; its spec is kept as given (``spec``).

    ``distance`` is the search metric of the initial ranking and of IQR (seed 000: histogram
    intersection). ``target_count`` is how many instances of the target class the worker is
    asked to find (seed 001: 12); ``iqr_rounds`` the number of refines allowed (seed 000: 2);
    ``results_per_round`` how many results each round shows (seed 000: the top 20);
    ``candidate_pool_size`` how deep into the ranking a worker can go in any round, the images
    whose saliency maps are precomputed; ``repetitions`` how many distinct workers each task
    pair needs, in both orders together (seed 001: at least three).

    ``search_scope`` is what a refine re-ranks: "archive", the whole archive through IQR's
    working set (seed 001), or "pool", the query's candidate pool only (bounded cost: every map
    is precomputed). ``round_budget_s`` is the latency a refine round should keep (refine click
    to results with their maps); a round past it waits for its exact maps and is recorded as
    over budget. ``search_working_set``: in the archive scope, what IQR ranks: "neighbours"
    (SMQTK's 500 nearest images of each positive, seed 001) or "all" (the whole archive, through
    the HIK bucket codes). ``warm_start_neighbours``: besides each query's first results, precompute the
    maps of that many nearest neighbours of each of them (the likely next results).
    """

    class Scope(models.TextChoices):
        ARCHIVE = "archive", "the whole archive"
        POOL = "pool", "the candidate pool"

    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        READY = "ready", "ready"
        LIVE = "live", "live"
        CLOSED = "closed", "closed"

    class Distance(models.TextChoices):
        HIK = "hik", "histogram intersection"
        L2 = "l2", "Euclidean"
        COSINE = "cosine", "cosine"

    slug = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    archive = models.ForeignKey("retrieval.Archive", on_delete=models.PROTECT, related_name="+")
    feature_set = models.ForeignKey(
        "retrieval.FeatureSet", on_delete=models.PROTECT, related_name="studies"
    )
    distance = models.CharField(max_length=10, choices=Distance.choices, default=Distance.HIK)
    target_count = models.PositiveSmallIntegerField(default=12)
    iqr_rounds = models.PositiveSmallIntegerField(default=2)
    results_per_round = models.PositiveSmallIntegerField(default=20)
    candidate_pool_size = models.PositiveIntegerField(default=200)
    repetitions = models.PositiveSmallIntegerField(default=3)
    search_scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.ARCHIVE)
    search_working_set = models.CharField(
        max_length=10,
        choices=[("neighbours", "SMQTK's neighbours of the positives"), ("all", "every image")],
        default="neighbours",
    )
    round_budget_s = models.FloatField(
        default=10.0, help_text="Latency budget of a refine round, seconds (click to results)."
    )
    warm_start_neighbours = models.PositiveSmallIntegerField(
        default=0, help_text="Nearest neighbours of each first result whose maps are precomputed."
    )
    assignment_timeout_minutes = models.PositiveIntegerField(
        default=60, help_text="An active assignment idle this long frees its cell."
    )
    seed = models.BigIntegerField(default=0, help_text="Seeds task-pair generation.")
    superclasses = models.JSONField(
        default=dict,
        blank=True,
        help_text='Optional override: {"cluttered": [class names], "large": [class names]}.',
    )
    tutorial = models.JSONField(default=dict, blank=True)
    lab_enabled = models.BooleanField(
        default=False, help_text="Participants may open the study at /lab/<slug>/ with a code."
    )
    lab_codes = models.JSONField(
        default=list, blank=True, help_text="The only lab codes accepted; empty: any code."
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="studies_owned",
        help_text="The researcher who created the study; with the collaborators, the only "
        "staff who see it (besides superusers).",
    )
    collaborators = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="studies_shared"
    )
    mturk = models.JSONField(default=dict, blank=True, help_text="HIT settings from the spec.")
    spec = models.JSONField(
        default=dict, blank=True, help_text="The spec the study was built from."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "studies"
        ordering = ["-created_at"]
        permissions = [
            ("go_live_study", "Can take a study live or close it"),
            ("publish_study", "Can publish a study's HITs on MTurk (spends money)"),
            ("pay_study", "Can approve, reject and bonus a study's workers (spends money)"),
            ("view_worker_ids", "Can see raw worker ids in exports"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(target_count__gte=1)
                & Q(results_per_round__gte=1)
                & Q(repetitions__gte=1)
                & Q(candidate_pool_size__gte=F("results_per_round")),
                name="study_sizes_valid",
            ),
            models.CheckConstraint(condition=Q(round_budget_s__gt=0), name="study_budget_gt_0"),
        ]

    def __str__(self) -> str:
        return self.slug


class Condition(models.Model):
    """A condition of the study: no explanations (``method`` empty) or one explanation method.

    ``method`` is a name in ``explain.registry`` and ``method_config`` the method's config as the
    spec gave it, ``{"method": name, **parameters}`` (empty for no-XAI): what
    ``explain.services.saliency_maps_compute`` takes, which fills in the backbone's normalisation
    and stores the complete config beside every map. A study may hold several with-XAI
    conditions to compare methods (seeds 002, 003).
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="conditions")
    name = models.SlugField(max_length=50)
    label = models.CharField(max_length=100, blank=True)
    method = models.CharField(max_length=50, blank=True)
    method_config = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["study", "id"]
        constraints = [
            models.UniqueConstraint(fields=["study", "name"], name="condition_name_once"),
        ]

    def __str__(self) -> str:
        return f"{self.study.slug}/{self.name}"

    @property
    def is_xai(self) -> bool:
        return bool(self.method)


class QueryImage(models.Model):
    """An archive image used as a search query, with the class the worker is asked to find."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="queries")
    image = models.ForeignKey("retrieval.Image", on_delete=models.PROTECT, related_name="+")
    category = models.ForeignKey("retrieval.Category", on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["study", "id"]
        constraints = [
            models.UniqueConstraint(fields=["study", "image"], name="query_image_once"),
        ]

    def __str__(self) -> str:
        return f"{self.image_id} ({self.category_id})"


class TaskPair(models.Model):
    """Two search tasks done by one worker: ``query_a`` under ``condition_a`` and ``query_b``
    under ``condition_b``, the two target classes different (checked by the service, which
    sees both queries' classes). The order a worker meets them is the assignment's.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="task_pairs")
    number = models.PositiveIntegerField()
    query_a = models.ForeignKey(QueryImage, on_delete=models.PROTECT, related_name="+")
    condition_a = models.ForeignKey(Condition, on_delete=models.PROTECT, related_name="+")
    query_b = models.ForeignKey(QueryImage, on_delete=models.PROTECT, related_name="+")
    condition_b = models.ForeignKey(Condition, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["study", "number"]
        constraints = [
            models.UniqueConstraint(fields=["study", "number"], name="task_pair_number_once"),
            models.CheckConstraint(
                condition=~Q(query_a=F("query_b")) & ~Q(condition_a=F("condition_b")),
                name="task_pair_two_queries_two_conditions",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.study.slug} pair {self.number}"


class Participant(models.Model):
    """A person: an MTurk worker (``worker_id``) or a lab participant (their code)."""

    class Source(models.TextChoices):
        MTURK = "mturk", "MTurk worker"
        LAB = "lab", "lab participant"

    source = models.CharField(max_length=10, choices=Source.choices)
    external_id = models.CharField(max_length=64, help_text="MTurk WorkerId or lab code.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="participant_once"),
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.external_id}"


class Assignment(models.Model):
    """One participant's HIT: a task pair in one order (``ab``: ``a`` first).

    ``active`` and ``submitted``/``approved`` assignments hold their (pair, order) cell;
    ``abandoned`` (idle past the study's timeout), ``returned`` (given back on MTurk) and
    ``rejected`` ones free it.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        SUBMITTED = "submitted", "submitted"
        APPROVED = "approved", "approved"
        REJECTED = "rejected", "rejected"
        RETURNED = "returned", "returned"
        ABANDONED = "abandoned", "abandoned"

    class Order(models.TextChoices):
        AB = "ab", "a then b"
        BA = "ba", "b then a"

    HOLDING_STATUSES = (Status.ACTIVE, Status.SUBMITTED, Status.APPROVED)

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="assignments")
    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="assignments"
    )
    task_pair = models.ForeignKey(TaskPair, on_delete=models.PROTECT, related_name="assignments")
    order = models.CharField(max_length=2, choices=Order.choices)
    order_seed = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="Under the spec's order: random, the seed the order was drawn from.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    mturk_assignment_id = models.CharField(max_length=64, blank=True)
    hit_id = models.CharField(max_length=64, blank=True)
    turk_submit_to = models.URLField(blank=True)
    completion_code = models.CharField(max_length=32, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["study", "id"]
        indexes = [models.Index(fields=["study", "task_pair", "order", "status"])]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "participant"],
                condition=Q(status__in=["active", "submitted", "approved"]),
                name="assignment_one_live_per_participant",
            ),
            models.UniqueConstraint(
                fields=["mturk_assignment_id"],
                condition=~Q(mturk_assignment_id=""),
                name="assignment_mturk_id_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.study.slug} #{self.pk} ({self.participant})"


class SearchTask(models.Model):
    """One of an assignment's two image-search tasks (``position`` 1 or 2).

    ``iqr_state`` is the worker's IQR session (``retrieval.services.iqr``), kept so that it
    survives a server restart.
    """

    class EndReason(models.TextChoices):
        TARGET_REACHED = "target_reached", "target count reached"
        ROUNDS_SPENT = "rounds_spent", "IQR rounds spent"
        GAVE_UP = "gave_up", "worker moved on"
        FINISHED = "finished", "worker finished by choice"
        TIME_UP = "time_up", "task time limit reached"

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="tasks")
    position = models.PositiveSmallIntegerField()
    condition = models.ForeignKey(Condition, on_delete=models.PROTECT, related_name="tasks")
    query = models.ForeignKey(QueryImage, on_delete=models.PROTECT, related_name="tasks")
    iqr_state = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=20, choices=EndReason.choices, blank=True)

    class Meta:
        ordering = ["assignment", "position"]
        constraints = [
            models.UniqueConstraint(fields=["assignment", "position"], name="task_position_once"),
            models.CheckConstraint(condition=Q(position__in=[1, 2]), name="task_position_1_or_2"),
        ]

    def __str__(self) -> str:
        return f"task {self.position} of assignment {self.assignment_id}"


class IQRRound(models.Model):
    """A ranking shown to the worker: round 0 is the initial search, round r >= 1 follows the
    r-th refine, trained on ``positives``/``negatives``/``unmarked`` (image ids, the query
    excluded), the marks as they stood when the worker asked for it.

    A refine round is created ``pending`` by the web process (``refine_event_id`` is the
    refine's client event id: one round per refine) and computed on the ``gpu`` queue, which
    stores ``ranking`` and the maps its results need and makes it ``ready``. ``delayed``: the
    round could not be handed to a worker (broker down) or waited past the study's budget
    without one; the marks are kept and a retry hands it over again. What it ran is recorded:
    ``scope``, ``working_set_size`` (rows IQR ranked), ``queued_seconds`` (request to start of
    computing), ``seconds`` (computing), ``maps_on_demand`` (maps computed for this round),
    ``attempts`` (hand-overs to the queue).

    ``top_ranking`` is the head of the ranking the round produced over the archive (nearest
    neighbours for round 0; after a refine the judged positives first, as SMQTK's IQR ranks
    them, then the SVM's order), the list seed 000 Eq. 5 is computed on.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "being prepared"
        DELAYED = "delayed", "delayed"
        READY = "ready", "ready"

    task = models.ForeignKey(SearchTask, on_delete=models.CASCADE, related_name="rounds")
    number = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.READY)
    ranking = models.JSONField(default=list, help_text="Image ids shown, best first.")
    top_ranking = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            "The first 50 image ids of the ranking the round produced, shown or not, judged "
            "images included: what seed 000's top-50 accuracy (Eq. 5) reads."
        ),
    )
    positives = models.JSONField(default=list)
    negatives = models.JSONField(default=list)
    unmarked = models.JSONField(default=list)
    refine_event_id = models.CharField(max_length=64, blank=True)
    scope = models.CharField(max_length=10, blank=True)
    working_set_size = models.PositiveIntegerField(null=True, blank=True)
    queued_seconds = models.FloatField(null=True, blank=True)
    seconds = models.FloatField(default=0.0, help_text="Server time to compute the ranking.")
    maps_on_demand = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    requested_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task", "number"]
        constraints = [
            models.UniqueConstraint(fields=["task", "number"], name="iqr_round_once"),
            models.CheckConstraint(condition=Q(seconds__gte=0), name="iqr_round_seconds_gte_0"),
            # One round per refine: a retried or repeated request finds the round it made.
            models.UniqueConstraint(
                fields=["task", "refine_event_id"],
                condition=~Q(refine_event_id=""),
                name="iqr_round_once_per_refine",
            ),
        ]

    def __str__(self) -> str:
        return f"round {self.number} of task {self.task_id}"


class Event(models.Model):
    """Something the worker did or saw, stored exactly once per ``client_event_id``.

    ``client_time`` is the browser's clock (for durations within a page), ``server_time`` ours
    (for ordering and for the analysis' T when the client clock is missing).
    """

    class Type(models.TextChoices):
        PAGE_VIEW = "page_view", "page view"
        SHOWN = "shown", "results shown"
        MARKED_RELEVANT = "marked_relevant", "marked relevant"
        MARKED_NOT_RELEVANT = "marked_not_relevant", "marked not relevant"
        UNMARKED = "unmarked", "judgement withdrawn"
        VIEWED_PLAIN = "viewed_plain", "plain image viewed"
        REFINE = "refine", "refine"
        TASK_END = "task_end", "task ended"
        QUESTIONNAIRE_ANSWER = "questionnaire_answer", "questionnaire answer"
        SUBMIT = "submit", "submit"

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="events")
    task = models.ForeignKey(
        SearchTask, on_delete=models.CASCADE, null=True, blank=True, related_name="events"
    )
    type = models.CharField(max_length=30, choices=Type.choices)
    image = models.ForeignKey(
        "retrieval.Image", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    iqr_round = models.PositiveSmallIntegerField(null=True, blank=True)
    client_event_id = models.CharField(max_length=64)
    client_time = models.DateTimeField(null=True, blank=True)
    server_time = models.DateTimeField(auto_now_add=True)
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["assignment", "server_time", "id"]
        indexes = [models.Index(fields=["task", "type"])]
        constraints = [
            models.UniqueConstraint(fields=["assignment", "client_event_id"], name="event_once"),
        ]

    def __str__(self) -> str:
        return f"{self.type} ({self.assignment_id})"


class Questionnaire(models.Model):
    """Questions asked after a search task (``subtask``; ``for_xai`` picks the condition kind,
    None for both) or once after both (``final``). Seed 001 section 5.3."""

    class Kind(models.TextChoices):
        SUBTASK = "subtask", "after each task"
        FINAL = "final", "after both tasks"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="questionnaires")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    for_xai = models.BooleanField(null=True, blank=True)
    title = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["study", "id"]

    def __str__(self) -> str:
        return f"{self.study.slug} {self.kind} questionnaire"


class Question(models.Model):
    """A statement rated on a Likert scale (1 = strongly disagree) or a free-text question."""

    class Scale(models.TextChoices):
        LIKERT6 = "likert6", "6-point Likert"
        LIKERT5 = "likert5", "5-point Likert"
        TEXT = "text", "free text"

    questionnaire = models.ForeignKey(
        Questionnaire, on_delete=models.CASCADE, related_name="questions"
    )
    code = models.SlugField(max_length=50)
    position = models.PositiveSmallIntegerField()
    text = models.TextField()
    scale = models.CharField(max_length=10, choices=Scale.choices, default=Scale.LIKERT6)
    required = models.BooleanField(default=True)

    class Meta:
        ordering = ["questionnaire", "position"]
        constraints = [
            models.UniqueConstraint(fields=["questionnaire", "code"], name="question_code_once"),
        ]

    def __str__(self) -> str:
        return self.code

    @property
    def points(self) -> int | None:
        return {"likert6": 6, "likert5": 5}.get(self.scale)


class Response(models.Model):
    """A participant's answer: ``value`` on a Likert scale or ``text``; ``task`` for sub-task
    questionnaires (which task it was about), empty for the final one."""

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="responses")
    question = models.ForeignKey(Question, on_delete=models.PROTECT, related_name="responses")
    task = models.ForeignKey(
        SearchTask, on_delete=models.CASCADE, null=True, blank=True, related_name="responses"
    )
    value = models.PositiveSmallIntegerField(null=True, blank=True)
    text = models.TextField(blank=True, max_length=5000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["assignment", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["assignment", "question", "task"],
                condition=Q(task__isnull=False),
                name="response_once_per_task",
            ),
            models.UniqueConstraint(
                fields=["assignment", "question"],
                condition=Q(task__isnull=True),
                name="response_once_final",
            ),
            models.CheckConstraint(
                condition=Q(value__isnull=True) | Q(value__gte=1) & Q(value__lte=6),
                name="response_value_1_to_6",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.question.code} by {self.assignment_id}"
