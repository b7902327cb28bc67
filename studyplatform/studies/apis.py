"""Researcher API of studies: thin views that parse, call one service or selector, serialise.

Staff only, by session or HTTP basic authentication, and then Django's model permissions on
``Study`` (``view_study`` to read, ``add_study`` to create, ``change_study`` to change,
``go_live_study`` to take a study live or close it); a researcher sees only the studies they own
or collaborate on (a superuser sees all), and exports show raw worker ids only to holders of
``view_worker_ids`` (a keyed pseudonym otherwise).
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import DjangoModelPermissions
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import Event, Study
from .selectors import (
    event_list,
    participant_label,
    response_list,
    study_list,
    study_progress,
    task_pair_list,
)
from .services.specs import StudySpecError, study_spec_dump, study_spec_parse
from .services.studies import (
    StudyStatusError,
    study_create_from_spec,
    study_spec_export,
    study_status_set,
)
from .services.task_pairs import TaskPairError, task_pair_generate


def _spec_error(exc: StudySpecError) -> ValidationError:
    """400 naming the first wrong field, and every problem found as ``{field, detail}``."""
    problems = [{"field": path, "detail": message} for path, message in exc.problems]
    return ValidationError({"field": exc.path, "detail": str(exc), "problems": problems})


class StudyOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    slug = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    status = serializers.CharField()
    archive = serializers.CharField(source="archive.name")
    feature_set = serializers.IntegerField(source="feature_set_id")
    distance = serializers.CharField()
    target_count = serializers.IntegerField()
    iqr_rounds = serializers.IntegerField()
    results_per_round = serializers.IntegerField()
    candidate_pool_size = serializers.IntegerField()
    repetitions = serializers.IntegerField()
    assignment_timeout_minutes = serializers.IntegerField()
    seed = serializers.IntegerField()
    n_conditions = serializers.IntegerField()
    n_queries = serializers.IntegerField()
    n_task_pairs = serializers.IntegerField()
    n_assignments = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


@extend_schema_field(OpenApiTypes.STR)
class ParticipantField(serializers.Field):
    """The participant's MTurk worker id or lab code, raw or pseudonymised for the requesting
    user (``context["user"]``, see ``selectors.participant_label``)."""

    def __init__(self, **kwargs):
        super().__init__(source="assignment.participant.external_id", read_only=True, **kwargs)

    def to_representation(self, value: str) -> str:
        return participant_label(external_id=value, user=self.context["user"])


class StudyPermissions(DjangoModelPermissions):
    """Staff, with the ``Study`` model permission the method needs (reading needs
    ``view_study``, which DRF's own map leaves open); object-level visibility is the
    selectors' (:func:`_study`)."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_staff) and super().has_permission(
            request, view
        )

    def get_required_permissions(self, method, model_cls):
        if method == "POST":  # a POST changes a study, except the one that creates it
            method = getattr(self, "_post_as", "PUT")
        return super().get_required_permissions(method, model_cls)


class _CreatePermissions(StudyPermissions):
    _post_as = "POST"


class _StudyApi(APIView):
    permission_classes = [StudyPermissions]
    queryset = Study.objects.none()  # the model DjangoModelPermissions checks


def _study(slug: str, request) -> Study:
    """The study ``slug`` if ``request.user`` may see it; 404 otherwise (also for a study that
    exists but is another researcher's, so its slug is not confirmed)."""
    return get_object_or_404(study_list(user=request.user), slug=slug)


class StudyListCreateApi(_StudyApi):
    """Studies, newest first; POST a spec (as JSON, or as YAML text) to create one (a draft)."""

    permission_classes = [_CreatePermissions]

    class StudyCreateInputSerializer(serializers.Serializer):
        spec = serializers.JSONField(
            required=False, help_text="The spec as an object (see fixtures/studies/)."
        )
        yaml = serializers.CharField(
            required=False, help_text="Or the spec as YAML text.", trim_whitespace=False
        )

        def validate(self, attrs):
            if ("spec" in attrs) == ("yaml" in attrs):
                raise serializers.ValidationError("give either spec or yaml")
            return attrs

    @extend_schema(responses=StudyOutputSerializer(many=True))
    def get(self, request):
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(study_list(user=request.user), request, view=self)
        return paginator.get_paginated_response(StudyOutputSerializer(page, many=True).data)

    @extend_schema(request=StudyCreateInputSerializer, responses={201: StudyOutputSerializer})
    def post(self, request):
        data = self.StudyCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            spec = data.validated_data.get("spec")
            if spec is None:
                spec = study_spec_parse(data.validated_data["yaml"])
            study = study_create_from_spec(spec=spec, owner=request.user)
        except StudySpecError as exc:
            raise _spec_error(exc) from None
        except TaskPairError as exc:
            raise ValidationError({"field": "task_pairs", "detail": str(exc)}) from None
        return Response(
            StudyOutputSerializer(_study(study.slug, request)).data, status=status.HTTP_201_CREATED
        )


class StudyDetailApi(_StudyApi):
    @extend_schema(responses=StudyOutputSerializer)
    def get(self, request, slug: str):
        return Response(StudyOutputSerializer(_study(slug, request)).data)


class StudySpecApi(_StudyApi):
    """The study exported as a normalised spec (``study_spec_load`` reads it back), and as YAML."""

    class StudySpecOutputSerializer(serializers.Serializer):
        spec = serializers.JSONField()
        yaml = serializers.CharField()

    @extend_schema(responses=StudySpecOutputSerializer)
    def get(self, request, slug: str):
        spec = study_spec_export(study=_study(slug, request))
        return Response({"spec": spec, "yaml": study_spec_dump(spec)})


class StudyStatusApi(_StudyApi):
    """Move the study to another status: draft -> ready -> live -> closed (ready -> draft)."""

    class StudyStatusInputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=Study.Status.choices)

    @extend_schema(request=StudyStatusInputSerializer, responses=StudyOutputSerializer)
    def post(self, request, slug: str):
        study = _study(slug, request)
        data = self.StudyStatusInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        going = data.validated_data["status"] in (Study.Status.LIVE, Study.Status.CLOSED)
        if going and not request.user.has_perm("studies.go_live_study"):
            raise PermissionDenied("taking a study live or closing it needs go_live_study")
        try:
            study_status_set(study=study, status=data.validated_data["status"])
        except StudyStatusError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(StudyOutputSerializer(_study(slug, request)).data)


class TaskPairListApi(_StudyApi):
    """The study's task pairs; POST to generate them again (refused once assignments exist)."""

    class TaskPairOutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        number = serializers.IntegerField()
        query_a = serializers.IntegerField(source="query_a.image_id")
        class_a = serializers.CharField(source="query_a.category.name")
        condition_a = serializers.CharField(source="condition_a.name")
        query_b = serializers.IntegerField(source="query_b.image_id")
        class_b = serializers.CharField(source="query_b.category.name")
        condition_b = serializers.CharField(source="condition_b.name")

    class GenerateInputSerializer(serializers.Serializer):
        seed = serializers.IntegerField(required=False, allow_null=True)

    class ReportSerializer(serializers.Serializer):
        study_id = serializers.IntegerField()
        seed = serializers.IntegerField()
        n_pairs = serializers.IntegerField()
        changed = serializers.BooleanField()
        balanced = serializers.BooleanField()
        uses = serializers.JSONField()
        spread = serializers.JSONField()
        comparisons = serializers.JSONField()

    @extend_schema(responses=TaskPairOutputSerializer(many=True))
    def get(self, request, slug: str):
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(
            task_pair_list(study=_study(slug, request)), request, view=self
        )
        return paginator.get_paginated_response(self.TaskPairOutputSerializer(page, many=True).data)

    @extend_schema(request=GenerateInputSerializer, responses=ReportSerializer)
    def post(self, request, slug: str):
        study = _study(slug, request)
        data = self.GenerateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            report = task_pair_generate(study=study, seed=data.validated_data.get("seed"))
        except TaskPairError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(report.as_dict())


class StudyProgressApi(_StudyApi):
    """Assignments by status, and holders per (task pair, order) cell."""

    class CellSerializer(serializers.Serializer):
        pair_id = serializers.IntegerField()
        pair_number = serializers.IntegerField()
        order = serializers.CharField()
        holders = serializers.IntegerField()
        by_status = serializers.DictField(child=serializers.IntegerField())

    class StudyProgressOutputSerializer(serializers.Serializer):
        study_id = serializers.IntegerField()
        repetitions = serializers.IntegerField()
        needed = serializers.IntegerField()
        holding = serializers.IntegerField()
        completed = serializers.IntegerField()
        full_pairs = serializers.IntegerField()
        by_status = serializers.DictField(child=serializers.IntegerField())
        per_order = serializers.DictField(child=serializers.IntegerField())
        max_order_imbalance = serializers.IntegerField()
        cells = serializers.ListField(child=serializers.DictField())

    @extend_schema(responses=StudyProgressOutputSerializer)
    def get(self, request, slug: str):
        return Response(study_progress(study=_study(slug, request)).as_dict())


class _ExportApi(_StudyApi):
    """Shared paging of the export endpoints (``?limit=&offset=``)."""

    def _page(self, request, rows, serializer):
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        data = serializer(page, many=True, context={"user": request.user}).data
        return paginator.get_paginated_response(data)


class EventExportApi(_ExportApi):
    """Every event of the study in server order; ``?assignment=<id>`` and ``?type=`` filter."""

    class EventOutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        assignment = serializers.IntegerField(source="assignment_id")
        participant = ParticipantField()
        source = serializers.CharField(source="assignment.participant.source")
        task_position = serializers.IntegerField(source="task.position", allow_null=True)
        condition = serializers.CharField(source="task.condition.name", allow_null=True)
        type = serializers.CharField()
        image = serializers.IntegerField(source="image_id", allow_null=True)
        iqr_round = serializers.IntegerField(allow_null=True)
        client_event_id = serializers.CharField()
        client_time = serializers.DateTimeField(allow_null=True)
        server_time = serializers.DateTimeField()
        payload = serializers.JSONField()

    class FilterSerializer(serializers.Serializer):
        assignment = serializers.IntegerField(required=False)
        type = serializers.ChoiceField(choices=Event.Type.choices, required=False)

    @extend_schema(parameters=[FilterSerializer], responses=EventOutputSerializer(many=True))
    def get(self, request, slug: str):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rows = event_list(
            study=_study(slug, request),
            assignment_id=filters.validated_data.get("assignment"),
            type=filters.validated_data.get("type"),
        )
        return self._page(request, rows, self.EventOutputSerializer)


class ResponseExportApi(_ExportApi):
    """Every questionnaire answer of the study, by assignment."""

    class ResponseOutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        assignment = serializers.IntegerField(source="assignment_id")
        participant = ParticipantField()
        questionnaire = serializers.CharField(source="question.questionnaire.kind")
        question = serializers.CharField(source="question.code")
        scale = serializers.CharField(source="question.scale")
        task_position = serializers.IntegerField(source="task.position", allow_null=True)
        condition = serializers.CharField(source="task.condition.name", allow_null=True)
        value = serializers.IntegerField(allow_null=True)
        text = serializers.CharField()
        created_at = serializers.DateTimeField()

    @extend_schema(responses=ResponseOutputSerializer(many=True))
    def get(self, request, slug: str):
        return self._page(
            request, response_list(study=_study(slug, request)), self.ResponseOutputSerializer
        )
