"""The staff-only results page of a study: Tables 1 and 2, permutation tests, Likert summaries,
figures (served by :func:`figure`) and downloads (CSV, XLSX, JSON, LaTeX).

The page lives at ``/analysis/<study>/`` (outside ``/admin/`` so that the admin's catch-all
view cannot shadow it) and renders inside the admin's layout; ``analysis.admin.results_link``
links to it from the Study admin. Views only parse, call one service and render.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from analysis.errors import AnalysisError
from analysis.services import (
    EXPORT_FORMATS,
    FIGURES,
    analysis_download,
    analysis_figure,
    analysis_run,
)
from studyplatform.studies.models import Study

_FIGURE_TITLES = {
    "figure4": "Figure 4: positives found with / without XAI per class, against clutter",
    "figure5": "Figure 5: preference for saliency maps (normalised answers)",
    "accuracy": "Top-N retrieval accuracy per IQR round and condition",
}


def _html(frame, *, percent: tuple[str, ...] = (), index: bool = True) -> str:
    """A table as HTML: two decimals, empty cells for missing values, percentages where asked.
    Every cell and label is HTML-escaped (class names come from an archive's annotations), so
    the template may mark the result safe."""
    styler = frame.style.format(precision=2, na_rep="", escape="html")
    styler = styler.format_index(escape="html", axis=0).format_index(escape="html", axis=1)
    for column in frame.columns:
        parts = column if isinstance(column, tuple) else (column,)
        if any(p in percent for p in parts):
            styler = styler.format("{:.1%}", subset=[column], na_rep="", escape="html")
    if not index:
        styler = styler.hide(axis="index")
    return styler.set_table_attributes('class="analysis-table"').to_html()


@require_GET
@staff_member_required
def results(request, study: str):
    study = get_object_or_404(Study, slug=study)
    context = {
        **admin.site.each_context(request),
        "study": study,
        "title": f"Results: {study.slug}",
    }
    try:
        result = analysis_run(study=study)
    except AnalysisError as exc:
        return render(request, "analysis/results.html", {**context, "error": str(exc)})
    tests = result.tests.drop(columns=["n_permutations", "alternative"], errors="ignore")
    context.update(
        result=result,
        table1=_html(result.table1.frame),
        table2=_html(result.table2.frame, percent=("XAI gain for",)),
        tests=_html(tests, percent=("gain",), index=False),
        likert=None if result.likert is None else _html(result.likert, index=False),
        figures=[(name, _FIGURE_TITLES[name]) for name in FIGURES],
        downloads=[f for f in EXPORT_FORMATS if f != "figures"],
    )
    return render(request, "analysis/results.html", context)


@require_GET
@staff_member_required
def figure(request, study: str, name: str, fmt: str):
    study = get_object_or_404(Study, slug=study)
    try:
        content = analysis_figure(study=study, name=name, fmt=fmt)
    except AnalysisError as exc:
        raise Http404(str(exc)) from exc
    mime = "image/png" if fmt == "png" else "image/svg+xml"
    response = HttpResponse(content, content_type=mime)
    if fmt == "svg":
        response["Content-Disposition"] = f'inline; filename="{study.slug}-{name}.svg"'
    return response


@require_GET
@staff_member_required
def download(request, study: str, fmt: str):
    study = get_object_or_404(Study, slug=study)
    try:
        name, mime, content = analysis_download(study=study, fmt=fmt)
    except AnalysisError as exc:
        raise Http404(str(exc)) from exc
    response = HttpResponse(content, content_type=mime)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
