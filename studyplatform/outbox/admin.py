from django.contrib import admin

from .models import OutboxEntry


@admin.register(OutboxEntry)
class OutboxEntryAdmin(admin.ModelAdmin):
    list_display = ("key", "task", "created_at", "published_at", "publish_count", "done_at")
    list_filter = ("task", ("done_at", admin.EmptyFieldListFilter))
    search_fields = ("key",)
    readonly_fields = [f.name for f in OutboxEntry._meta.fields]
