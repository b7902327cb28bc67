"""Archives mirroring the COCO format: images, categories, annotations, per-class statistics.

One ``Archive`` may be filled from several COCO files (``instances_train2017.json`` and
``instances_val2017.json`` give seed 001's ~123K images); COCO ids are unique per archive.
"""

from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Q


class Archive(models.Model):
    """A searchable collection of images, e.g. COCO train+val 2017 or a synthetic archive."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    statistics_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ImageDirectory(models.Model):
    """A folder holding image files of an archive (one per imported image folder)."""

    archive = models.ForeignKey(Archive, on_delete=models.CASCADE, related_name="directories")
    path = models.CharField(max_length=1000, help_text="Absolute path of the folder.")

    class Meta:
        verbose_name_plural = "image directories"
        constraints = [
            models.UniqueConstraint(fields=["archive", "path"], name="image_directory_once"),
        ]

    def __str__(self) -> str:
        return self.path


class ArchiveImport(models.Model):
    """One successful import of a COCO instances file; its hash makes a re-import a no-op."""

    archive = models.ForeignKey(Archive, on_delete=models.CASCADE, related_name="imports")
    directory = models.ForeignKey(ImageDirectory, on_delete=models.PROTECT, related_name="imports")
    source_path = models.CharField(max_length=1000)
    sha256 = models.CharField(max_length=64)
    file_size = models.BigIntegerField()
    category_count = models.PositiveIntegerField()
    image_count = models.PositiveIntegerField()
    annotation_count = models.PositiveIntegerField()
    seconds = models.FloatField(help_text="Wall-clock duration of the import.")
    imported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-imported_at"]
        constraints = [
            models.UniqueConstraint(fields=["archive", "sha256"], name="archive_import_once"),
            models.CheckConstraint(
                condition=Q(seconds__gte=0), name="archive_import_seconds_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.archive} <- {self.source_path}"


class Category(models.Model):
    """A COCO category of an archive, with statistics recomputed after every import.

    ``clutter``: mean number of distinct categories in the images holding this one (seed 001,
    section 5.1, "Confuser"); ``size``: mean instance area as a fraction of its image's area.
    """

    archive = models.ForeignKey(
        Archive, on_delete=models.CASCADE, related_name="categories", db_index=False
    )
    coco_id = models.BigIntegerField()
    name = models.CharField(max_length=200)
    supercategory = models.CharField(max_length=200, blank=True)
    instance_count = models.PositiveIntegerField(default=0)
    image_count = models.PositiveIntegerField(default=0)
    clutter = models.FloatField(null=True, blank=True)
    size = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["archive", "coco_id"]
        verbose_name_plural = "categories"
        constraints = [
            models.UniqueConstraint(fields=["archive", "coco_id"], name="category_coco_id_once"),
            models.UniqueConstraint(fields=["archive", "name"], name="category_name_once"),
            models.CheckConstraint(
                condition=Q(size__isnull=True) | Q(size__gte=0), name="category_size_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(clutter__isnull=True) | Q(clutter__gte=1),
                name="category_clutter_gte_1",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Image(models.Model):
    """An archive image; the file is ``directory.path / file_name``."""

    archive = models.ForeignKey(
        Archive, on_delete=models.CASCADE, related_name="images", db_index=False
    )
    directory = models.ForeignKey(ImageDirectory, on_delete=models.PROTECT, related_name="images")
    coco_id = models.BigIntegerField()
    file_name = models.CharField(max_length=500)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    metadata = models.JSONField(default=dict, blank=True, help_text="Other COCO image fields.")

    class Meta:
        ordering = ["archive", "coco_id"]
        constraints = [
            models.UniqueConstraint(fields=["archive", "coco_id"], name="image_coco_id_once"),
            models.CheckConstraint(
                condition=Q(width__gt=0) & Q(height__gt=0), name="image_size_gt_0"
            ),
        ]

    def __str__(self) -> str:
        return self.file_name


class Annotation(models.Model):
    """A COCO instance annotation: bbox in pixels ``(x, y, w, h)``, area in px^2."""

    # Lookups by archive use the (archive, coco_id) unique index; a separate one would only slow
    # down the ~1M inserts of a COCO import.
    archive = models.ForeignKey(
        Archive, on_delete=models.CASCADE, related_name="annotations", db_index=False
    )
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="annotations")
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="annotations")
    coco_id = models.BigIntegerField()
    bbox_x = models.FloatField()
    bbox_y = models.FloatField()
    bbox_w = models.FloatField()
    bbox_h = models.FloatField()
    area = models.FloatField()
    iscrowd = models.BooleanField(default=False)
    segmentation = models.JSONField(
        default=list, blank=True, help_text="Polygons [[x1, y1, ...], ...] or an RLE object."
    )

    class Meta:
        ordering = ["archive", "coco_id"]
        constraints = [
            models.UniqueConstraint(fields=["archive", "coco_id"], name="annotation_coco_id_once"),
            models.CheckConstraint(
                condition=Q(area__gte=0) & Q(bbox_w__gte=0) & Q(bbox_h__gte=0),
                name="annotation_extent_gte_0",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.category_id}@{self.image_id}"


class FeatureSet(models.Model):
    """Features of every image of an archive under one backbone configuration.

    The features live on disk (``STUDYPLATFORM_DATA_DIR/features/<path>``): a float32 ``.npy``
    array of shape (n_rows, dim), L1-normalised rows, memory-mapped when read, and beside it
    ``.ids.npy``, the archive image id of each row. The backbone config and the hash of its
    weights say exactly which model made them.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    archive = models.ForeignKey(Archive, on_delete=models.CASCADE, related_name="feature_sets")
    backbone_config = models.JSONField()
    config_key = models.CharField(
        max_length=64, help_text="SHA-256 of the canonical backbone config; one set per config."
    )
    weights_sha256 = models.CharField(max_length=64, blank=True)
    path = models.CharField(max_length=500, help_text="Relative to the features folder.")
    dim = models.PositiveIntegerField(null=True, blank=True)
    n_rows = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    failed_images = models.JSONField(
        default=list,
        blank=True,
        help_text="[[image id, reason], ...] of images that could not be read.",
    )
    error = models.TextField(blank=True)
    seconds = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["archive", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["archive", "config_key"], name="feature_set_once"),
            models.CheckConstraint(
                condition=Q(rows_done__lte=models.F("n_rows")),
                name="feature_set_rows_done_lte_n_rows",
            ),
        ]

    def __str__(self) -> str:
        config = self.backbone_config
        return (
            f"{self.archive} / {config.get('name')}:{config.get('layer')} ({config.get('weights')})"
        )

    @property
    def features_path(self) -> Path:
        """The (n_rows, dim) float32 ``.npy`` file."""
        return Path(settings.DATA_DIR) / "features" / self.path

    @property
    def ids_path(self) -> Path:
        """The (n_rows,) int64 ``.npy`` file of image ids, one per row."""
        return self.features_path.with_suffix(".ids.npy")

    @property
    def codes_path(self) -> Path:
        """The folder of the features' HIK bucket codes (``retrieval.hik_codes``)."""
        return self.features_path.with_suffix(".hikcodes")
