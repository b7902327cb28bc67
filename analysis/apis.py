"""Results API (staff only, ``IsAdminUser``): the tables of the results page as JSON.

``GET /api/analysis/<study>/`` gives every table; ``GET /api/analysis/<study>/<table>/`` one
of :data:`TABLES`. Tables are lists of row objects in tidy form (Table 1 and 2 as their
``long`` frames: one row per cell and attribute); missing values are ``null``. A study whose
analysis cannot run yet answers 409 with the reason.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import APIException, NotFound
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from analysis.errors import AnalysisError
from analysis.services import analysis_run
from studyplatform.studies.models import Study

if TYPE_CHECKING:  # pandas loads with the analysis run, not with the URLconf
    import pandas as pd

    from analysis.pipeline import AnalysisResult

TABLES = ("tasks", "table1", "table2", "tests", "class_ratios", "likert")


class AnalysisNotReady(APIException):
    status_code = 409
    default_detail = "the analysis cannot run yet"
    default_code = "analysis_not_ready"


def _rows(frame: pd.DataFrame | None) -> list[dict]:
    if frame is None:
        return []

    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if hasattr(value, "item"):  # numpy scalars
            return clean(value.item())
        return value

    return [{str(k): clean(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _table(result: AnalysisResult, name: str) -> list[dict]:
    frames = {
        "tasks": result.tasks,
        "table1": result.table1.long,
        "table2": result.table2.long,
        "tests": result.tests,
        "class_ratios": result.class_ratios.long,
        "likert": result.likert,
    }
    return _rows(frames[name])


def _result(slug: str) -> tuple[Study, AnalysisResult]:
    study = get_object_or_404(Study, slug=slug)
    try:
        return study, analysis_run(study=study)
    except AnalysisError as exc:
        raise AnalysisNotReady(str(exc)) from exc


class StudyResultsApi(APIView):
    """Every table of a study's analysis, with its parameters, superclass cells and notes."""

    permission_classes = [IsAdminUser]

    class StudyResultsOutputSerializer(serializers.Serializer):
        study = serializers.CharField()
        parameters = serializers.DictField()
        cells = serializers.DictField(child=serializers.CharField())
        notes = serializers.ListField(child=serializers.CharField())
        tables = serializers.DictField(child=serializers.ListField(child=serializers.DictField()))

    @extend_schema(responses=StudyResultsOutputSerializer)
    def get(self, request, study: str):
        study, result = _result(study)
        payload = {
            "study": study.slug,
            "parameters": result.parameters,
            "cells": result.cells,
            "notes": result.notes,
            "tables": {name: _table(result, name) for name in TABLES},
        }
        return Response(self.StudyResultsOutputSerializer(payload).data)


class StudyTableApi(APIView):
    """One table of a study's analysis (``tasks``, ``table1``, ``table2``, ``tests``,
    ``class_ratios`` or ``likert``)."""

    permission_classes = [IsAdminUser]

    class StudyTableOutputSerializer(serializers.Serializer):
        study = serializers.CharField()
        table = serializers.CharField()
        rows = serializers.ListField(child=serializers.DictField())

    @extend_schema(responses=StudyTableOutputSerializer, operation_id="analysis_table_retrieve")
    def get(self, request, study: str, table: str):
        if table not in TABLES:
            raise NotFound(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
        study, result = _result(study)
        payload = {"study": study.slug, "table": table, "rows": _table(result, table)}
        return Response(self.StudyTableOutputSerializer(payload).data)
