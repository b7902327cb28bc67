"""Admin hooks of the analysis: a link to a study's results page for the Study admin.

The results page itself is a staff-only view (``analysis.views.results``, URL
``analysis:results``) rendered in the admin's layout; the Study admin shows this link with
``list_display = [..., results_link]`` or ``readonly_fields = [..., "results_link"]``.
"""

from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html


@admin.display(description="results")
def results_link(study) -> str:
    """An HTML link to ``study``'s results page (empty when the URLs are not installed)."""
    try:
        url = reverse("analysis:results", kwargs={"study": study.slug})
    except NoReverseMatch:
        return ""
    return format_html('<a href="{}">Tables, tests and figures</a>', url)
