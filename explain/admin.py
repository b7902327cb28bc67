from django.contrib import admin
from django.core.files.storage import default_storage
from django.utils.html import format_html

from .models import SaliencyMap


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
    list_filter = ["method", "feature_set", "from_cache"]
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

    @admin.display(description="overlay")
    def overlay(self, obj):
        if not obj.overlay_key:
            return "not rendered"
        return format_html(
            '<img src="{}" alt="saliency overlay" loading="lazy" style="max-height:80px">',
            default_storage.url(obj.overlay_key),
        )
