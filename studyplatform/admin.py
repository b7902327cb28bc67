"""The Study admin with what the apps above the studies core add to it.

The studies core's ``StudyAdmin`` knows only the core; here, in the wiring, it gains the
saliency-map progress and the precompute action (explain), publishing to MTurk (mturk) and the
link to the results page (analysis). This module is found by the admin's autodiscovery
(``studyplatform`` is an installed app listed before the study app), replaces the core's
registration of ``Study`` and imports no torch: the explain code it calls loads the network
only inside the workers.
"""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from analysis.admin import results_link
from explain.selectors import saliency_progress_detail
from explain.tasks import saliency_precompute_study
from mturk.admin import publish_to_mturk
from studyplatform.studies.admin import StudyAdmin
from studyplatform.studies.models import Study


def _before(names: list[str], anchor: str, *added: str) -> list[str]:
    at = names.index(anchor)
    return [*names[:at], *added, *names[at:]]


class PlatformStudyAdmin(StudyAdmin):
    list_display = _before(StudyAdmin.list_display, "created_at", "results")
    readonly_fields = _before(StudyAdmin.readonly_fields, "created_at", "saliency_maps")
    actions = [*StudyAdmin.actions, "precompute_saliency", publish_to_mturk]

    @admin.display(description="saliency maps")
    def saliency_maps(self, study: Study) -> str:
        # Change page only: the plan runs one search per query, too slow for the list.
        progress = saliency_progress_detail(study=study)
        url = reverse("admin:explain_saliencymap_changelist") + f"?study={study.pk}"
        return format_html(
            '<a href="{}">{} of {} computed, {} rendered</a>',
            url,
            progress.done,
            progress.total,
            progress.rendered,
        )

    @admin.action(
        description="Precompute saliency maps (queued on the gpu workers)", permissions=["change"]
    )
    def precompute_saliency(self, request, queryset):
        # Planning needs the backbone's normalisation: a worker plans and queues the chunks.
        for study in queryset:
            saliency_precompute_study.delay_on_commit(study.pk)
            self.message_user(request, f"{study.slug}: precompute queued (admin: saliency maps)")

    @admin.display(description="analysis")
    def results(self, study: Study) -> str:
        return results_link(study)


admin.site.unregister(Study)
admin.site.register(Study, PlatformStudyAdmin)
