"""Admin of studies: the design (conditions, queries, questionnaires, task pairs) and progress.

Writes go through the services: status changes use ``study_status_set`` (admin actions), and
studies are created from specs (``manage.py create_study`` or the API), so the admin shows the
design read-only once a study exists. The columns and actions of the apps above the core
(saliency maps, publishing, results) are added by ``studyplatform.admin``.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Q

from .models import (
    Assignment,
    Condition,
    Event,
    Participant,
    QueryImage,
    Question,
    Questionnaire,
    Response,
    SearchTask,
    Study,
    TaskPair,
)
from .selectors import study_list, study_visible_ids
from .services.studies import StudyStatusError, study_status_set

_HOLDING = Q(assignments__status__in=[str(s) for s in Assignment.HOLDING_STATUSES])


class _OfVisibleStudies:
    """Rows of the studies the user owns or collaborates on (all for a superuser);
    ``study_path`` is the lookup from the row to its study's id."""

    study_path = "study_id"

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        visible = study_visible_ids(user=request.user)
        if visible is None:
            return rows
        return rows.filter(**{f"{self.study_path}__in": visible}).distinct()


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ConditionInline(_ReadOnlyInline):
    model = Condition
    fields = ["name", "label", "method", "method_config"]
    readonly_fields = fields


class QueryImageInline(_ReadOnlyInline):
    model = QueryImage
    fields = ["image", "category"]
    readonly_fields = fields


class QuestionnaireInline(_ReadOnlyInline):
    model = Questionnaire
    fields = ["kind", "for_xai", "title"]
    readonly_fields = fields


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = [
        "slug",
        "title",
        "status",
        "archive",
        "n_queries",
        "n_task_pairs",
        "progress",
        "n_assignments",
        "created_at",
    ]
    list_filter = ["status", "archive"]
    search_fields = ["slug", "title"]
    readonly_fields = [
        "slug",
        "archive",
        "feature_set",
        "distance",
        "target_count",
        "iqr_rounds",
        "results_per_round",
        "candidate_pool_size",
        "repetitions",
        "seed",
        "status",
        "spec",
        "created_at",
        "updated_at",
    ]
    inlines = [ConditionInline, QuestionnaireInline, QueryImageInline]
    actions = [
        "make_ready",
        "make_live",
        "make_closed",
    ]

    def get_queryset(self, request):
        return study_list(user=request.user).annotate(
            _holding=Count("assignments", filter=_HOLDING, distinct=True)
        )

    def has_go_live_permission(self, request) -> bool:
        return request.user.has_perm("studies.go_live_study")

    def has_publish_permission(self, request) -> bool:
        return request.user.has_perm("studies.publish_study")

    def save_model(self, request, obj, form, change):
        if not change and obj.owner_id is None:
            obj.owner = request.user
        super().save_model(request, obj, form, change)

    def has_add_permission(self, request):
        return False  # studies come from specs: manage.py create_study or POST /api/studies/

    @admin.display(description="queries", ordering="n_queries")
    def n_queries(self, obj):
        return obj.n_queries

    @admin.display(description="task pairs", ordering="n_task_pairs")
    def n_task_pairs(self, obj):
        return obj.n_task_pairs

    @admin.display(description="assignments", ordering="n_assignments")
    def n_assignments(self, obj):
        return obj.n_assignments

    @admin.display(description="holding / needed")
    def progress(self, obj):
        needed = (obj.spec or {}).get("hits") or obj.n_task_pairs * obj.repetitions
        return f"{obj._holding} / {needed}"

    def _set_status(self, request, queryset, status):
        for study in queryset:
            try:
                study_status_set(study=study, status=status)
            except StudyStatusError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{study.slug} is {status}", messages.SUCCESS)

    @admin.action(
        description="Mark ready (task pairs and features present)", permissions=["change"]
    )
    def make_ready(self, request, queryset):
        self._set_status(request, queryset, Study.Status.READY)

    @admin.action(description="Go live", permissions=["go_live"])
    def make_live(self, request, queryset):
        self._set_status(request, queryset, Study.Status.LIVE)

    @admin.action(description="Close", permissions=["go_live"])
    def make_closed(self, request, queryset):
        self._set_status(request, queryset, Study.Status.CLOSED)


@admin.register(TaskPair)
class TaskPairAdmin(_OfVisibleStudies, admin.ModelAdmin):
    list_display = [
        "study",
        "number",
        "query_a",
        "condition_a",
        "query_b",
        "condition_b",
        "holders",
    ]
    list_filter = ["study"]
    list_select_related = ["study", "condition_a", "condition_b", "query_a", "query_b"]
    readonly_fields = ["study", "number", "query_a", "condition_a", "query_b", "condition_b"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                _ab=Count("assignments", filter=_HOLDING & Q(assignments__order="ab")),
                _ba=Count("assignments", filter=_HOLDING & Q(assignments__order="ba")),
            )
        )

    @admin.display(description="holders ab / ba")
    def holders(self, obj):
        return f"{obj._ab} / {obj._ba}"

    def has_add_permission(self, request):
        return False


class QuestionInline(admin.TabularInline):
    model = Question
    extra = 0
    fields = ["position", "code", "text", "scale", "required"]


@admin.register(Questionnaire)
class QuestionnaireAdmin(_OfVisibleStudies, admin.ModelAdmin):
    list_display = ["study", "kind", "for_xai", "title"]
    list_filter = ["study", "kind"]
    inlines = [QuestionInline]


@admin.register(Participant)
class ParticipantAdmin(_OfVisibleStudies, admin.ModelAdmin):
    """Raw worker ids: only for holders of ``studies.view_worker_ids``."""

    study_path = "assignments__study_id"

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("studies.view_worker_ids") and super().has_view_permission(
            request, obj
        )

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    list_display = ["external_id", "source", "created_at"]
    list_filter = ["source"]
    search_fields = ["=external_id"]


class SearchTaskInline(_ReadOnlyInline):
    model = SearchTask
    fields = ["position", "condition", "query", "started_at", "ended_at", "end_reason"]
    readonly_fields = fields


@admin.register(Assignment)
class AssignmentAdmin(_OfVisibleStudies, admin.ModelAdmin):
    list_display = [
        "pk",
        "study",
        "participant",
        "task_pair",
        "order",
        "status",
        "started_at",
        "last_seen_at",
        "finished_at",
    ]
    list_filter = ["study", "status", "order"]
    list_select_related = ["study", "participant", "task_pair__study"]
    search_fields = ["=participant__external_id", "=mturk_assignment_id", "=hit_id"]
    readonly_fields = [
        "study",
        "participant",
        "task_pair",
        "order",
        "status",
        "mturk_assignment_id",
        "hit_id",
        "turk_submit_to",
        "completion_code",
        "started_at",
        "last_seen_at",
        "finished_at",
    ]
    inlines = [SearchTaskInline]

    def has_add_permission(self, request):
        return False


@admin.register(Event)
class EventAdmin(_OfVisibleStudies, admin.ModelAdmin):
    study_path = "assignment__study_id"
    list_display = ["server_time", "assignment", "task", "type", "image", "iqr_round"]
    list_filter = ["type"]
    list_select_related = ["assignment__study", "assignment__participant", "task"]
    search_fields = ["=assignment__participant__external_id", "=client_event_id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Response)
class ResponseAdmin(_OfVisibleStudies, admin.ModelAdmin):
    study_path = "assignment__study_id"
    list_display = ["assignment", "question", "task", "value", "text"]
    list_select_related = ["assignment__study", "assignment__participant", "question", "task"]
    search_fields = ["=assignment__participant__external_id", "question__code"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
