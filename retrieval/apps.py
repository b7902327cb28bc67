from django.apps import AppConfig


class RetrievalConfig(AppConfig):
    """Archives, images, categories, annotations and their per-class statistics."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "retrieval"
    verbose_name = "Retrieval"
