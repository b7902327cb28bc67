from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from retrieval.backbones import WeightsNotFoundError
from retrieval.models import Archive
from retrieval.services.features import feature_set_create, feature_set_extract


class Command(BaseCommand):
    help = (
        "Extract the features of every image of an archive with a backbone, here, with a progress "
        "bar (the admin and the API queue the same work on the gpu queue instead). Resumes an "
        "interrupted run."
    )

    def add_arguments(self, parser):
        parser.add_argument("--archive", required=True)
        parser.add_argument(
            "--backbone",
            default="resnet50",
            help="resnet50, resnet18, vgg19, densenet121, synthnet",
        )
        parser.add_argument(
            "--layer", default=None, help="Layer to cut at (the backbone's default if omitted)."
        )
        parser.add_argument(
            "--weights",
            default="imagenet",
            help="imagenet, none (random), fixture, or a local file path.",
        )
        parser.add_argument("--image-size", type=int, default=None)
        parser.add_argument("--batch-size", type=int, default=32)

    def handle(self, *args, archive, backbone, layer, weights, image_size, batch_size, **options):
        try:
            archive_row = Archive.objects.get(name=archive)
        except Archive.DoesNotExist:
            raise CommandError(f"no archive named {archive!r}") from None
        config = {"name": backbone, "weights": weights}
        if layer:
            config["layer"] = layer
        if image_size:
            config["image_size"] = image_size
        try:
            feature_set, _ = feature_set_create(
                archive=archive_row, backbone_config=config, enqueue=False
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

        bar = tqdm(
            total=feature_set.n_rows,
            unit="img",
            disable=options["verbosity"] == 0,
            file=self.stderr,
        )

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            feature_set = feature_set_extract(
                feature_set=feature_set, progress=progress, batch_size=batch_size
            )
        except (ValueError, WeightsNotFoundError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        for image_id, reason in feature_set.failed_images:
            self.stderr.write(f"skipped image {image_id}: {reason}")
        path = feature_set.features_path
        self.stdout.write(
            self.style.SUCCESS(
                f"Feature set {feature_set.pk}: {feature_set.n_rows} x {feature_set.dim} in {path} "
                f"({len(feature_set.failed_images)} images skipped)"
            )
        )
