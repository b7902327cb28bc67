from django.contrib import admin, messages
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html

from .models import Annotation, Archive, ArchiveImport, Category, FeatureSet, Image, ImageDirectory
from .selectors import category_superclasses
from .tasks import archive_statistics_refresh, feature_set_extract


class ArchiveImportInline(admin.TabularInline):
    model = ArchiveImport
    extra = 0
    can_delete = False
    fields = [
        "source_path",
        "image_count",
        "annotation_count",
        "category_count",
        "seconds",
        "imported_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Archive)
class ArchiveAdmin(admin.ModelAdmin):
    list_display = ["name", "n_images", "n_categories", "statistics_updated_at", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["statistics_updated_at", "created_at"]
    inlines = [ArchiveImportInline]
    actions = ["refresh_statistics"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                _n_images=Count("images", distinct=True),
                _n_categories=Count("categories", distinct=True),
            )
        )

    @admin.display(description="images", ordering="_n_images")
    def n_images(self, obj):
        return obj._n_images

    @admin.display(description="categories", ordering="_n_categories")
    def n_categories(self, obj):
        return obj._n_categories

    @admin.action(description="Recompute class statistics")
    def refresh_statistics(self, request, queryset):
        for archive in queryset:
            archive_statistics_refresh.delay(archive.pk)
        self.message_user(
            request, f"Statistics refresh queued for {queryset.count()} archive(s).", messages.INFO
        )


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "archive",
        "coco_id",
        "supercategory",
        "instance_count",
        "image_count",
        "clutter_display",
        "size_display",
        "superclass",
    ]
    list_filter = ["archive"]
    search_fields = ["name", "supercategory"]
    readonly_fields = ["instance_count", "image_count", "clutter", "size"]
    list_per_page = 100

    def changelist_view(self, request, extra_context=None):
        self._superclass_cache = {}
        return super().changelist_view(request, extra_context)

    @admin.display(description="clutter", ordering="clutter")
    def clutter_display(self, obj):
        return "" if obj.clutter is None else f"{obj.clutter:.2f}"

    @admin.display(description="size (fraction)", ordering="size")
    def size_display(self, obj):
        return "" if obj.size is None else f"{obj.size:.4f}"

    @admin.display(description="superclass among annotated classes")
    def superclass(self, obj):
        cache = getattr(self, "_superclass_cache", {})
        if obj.archive_id not in cache:
            try:
                cache[obj.archive_id] = category_superclasses(archive=obj.archive)
            except ValueError:
                cache[obj.archive_id] = {}
        return cache[obj.archive_id].get(obj.name, "")


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = [
        "thumbnail",
        "file_name",
        "coco_id",
        "archive",
        "width",
        "height",
        "n_annotations",
    ]
    list_filter = ["archive"]
    search_fields = ["file_name", "=coco_id"]
    readonly_fields = ["thumbnail", "archive", "directory", "coco_id"]
    list_per_page = 50

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_n_annotations=Count("annotations"))

    @admin.display(description="annotations", ordering="_n_annotations")
    def n_annotations(self, obj):
        return obj._n_annotations

    @admin.display(description="")
    def thumbnail(self, obj):
        url = reverse("retrieval:image-thumbnail", args=[obj.pk])
        return format_html(
            '<img src="{}" alt="{}" loading="lazy" style="max-height:80px">', url, obj.file_name
        )


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["coco_id", "category", "image", "area", "iscrowd"]
    list_filter = ["archive", "iscrowd"]
    list_select_related = ["category", "image"]
    raw_id_fields = ["image", "category"]
    search_fields = ["=coco_id"]


@admin.register(ImageDirectory)
class ImageDirectoryAdmin(admin.ModelAdmin):
    list_display = ["path", "archive"]
    list_filter = ["archive"]


@admin.register(FeatureSet)
class FeatureSetAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "status",
        "progress",
        "dim",
        "weights",
        "n_failed",
        "seconds_display",
        "updated_at",
    ]
    list_filter = ["archive", "status"]
    readonly_fields = [
        "archive",
        "backbone_config",
        "config_key",
        "weights_sha256",
        "path",
        "dim",
        "n_rows",
        "rows_done",
        "status",
        "failed_images",
        "error",
        "seconds",
        "created_at",
        "updated_at",
    ]
    actions = ["queue_extraction"]

    def has_add_permission(self, request):
        # Feature sets are made by `manage.py extract_features`, the API or a study, which
        # validate the backbone config first.
        return False

    @admin.display(description="rows done")
    def progress(self, obj):
        percent = 100 * obj.rows_done / obj.n_rows if obj.n_rows else 0
        return f"{obj.rows_done} / {obj.n_rows} ({percent:.0f}%)"

    @admin.display(description="weights sha256")
    def weights(self, obj):
        return obj.weights_sha256[:12]

    @admin.display(description="skipped images")
    def n_failed(self, obj):
        return len(obj.failed_images)

    @admin.display(description="seconds", ordering="seconds")
    def seconds_display(self, obj):
        return f"{obj.seconds:.1f}"

    @admin.action(description="Queue extraction (resumes where it stopped)")
    def queue_extraction(self, request, queryset):
        pending = queryset.exclude(status=FeatureSet.Status.DONE)
        for feature_set in pending:
            feature_set_extract.delay_on_commit(feature_set.pk)
        self.message_user(
            request, f"Extraction queued for {pending.count()} feature set(s).", messages.INFO
        )
