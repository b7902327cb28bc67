from django.contrib import admin, messages
from django.core.files.storage import default_storage
from django.utils.html import format_html

from studyplatform.studies.models import Study

from .models import SaliencyMap
from .selectors import saliency_maps_of_study, saliency_progress_detail


class StudyFilter(admin.SimpleListFilter):
    """The maps of one study's with-XAI conditions (``explain.selectors.saliency_maps_of_study``)."""

    title = "study"
    parameter_name = "study"

    def lookups(self, request, model_admin):
        return [(str(pk), slug) for pk, slug in Study.objects.values_list("pk", "slug")]

    def queryset(self, request, queryset):
        study = self.study()
        if study is None:
            return queryset
        try:
            return queryset & saliency_maps_of_study(study=study)
        except ValueError:  # a condition with a bad method config: nothing of it can exist
            return queryset.none()

    def study(self) -> Study | None:
        value = self.value()
        if not value or not value.isdigit():
            return None
        return Study.objects.filter(pk=int(value)).first()


@admin.register(SaliencyMap)
class SaliencyMapAdmin(admin.ModelAdmin):
    list_display = [
        "overlay",
        "method",
        "query",
        "result",
        "map_max",
        "vmax",
        "seconds",
        "from_cache",
    ]
    list_filter = [StudyFilter, "method", "feature_set", "from_cache"]
    list_select_related = ["query", "result"]
    raw_id_fields = ["query", "result", "feature_set"]
    readonly_fields = [
        "feature_set",
        "query",
        "result",
        "method",
        "method_config",
        "config_key",
        "raw_key",
        "overlay_key",
        "map_max",
        "vmax",
        "seconds",
        "from_cache",
        "created_at",
    ]

    def has_add_permission(self, request):
        return False

    def changelist_view(self, request, extra_context=None):
        # With a study chosen, its precompute progress heads the list (one search per query).
        value = request.GET.get(StudyFilter.parameter_name, "")
        study = Study.objects.filter(pk=int(value)).first() if value.isdigit() else None
        if study is not None:
            try:
                state = saliency_progress_detail(study=study)
            except ValueError as error:
                self.message_user(request, f"Study {study.slug}: {error}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Study {study.slug}: {state.done} of {state.total} saliency maps computed, "
                    f"{state.rendered} overlays rendered",
                    messages.SUCCESS if state.rendered == state.total else messages.INFO,
                )
        return super().changelist_view(request, extra_context)

    @admin.display(description="overlay")
    def overlay(self, obj):
        if not obj.overlay_key:
            return "not rendered"
        return format_html(
            '<img src="{}" alt="saliency overlay" loading="lazy" style="max-height:80px">',
            default_storage.url(obj.overlay_key),
        )
