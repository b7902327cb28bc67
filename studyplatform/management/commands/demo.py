import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from tqdm import tqdm

from retrieval.services import archive_import_coco
from retrieval.services.features import feature_set_extract, features_extract
from retrieval.synthetic import generate_archive

DEMO_ARCHIVE = "synthetic-demo"
# The small CNN trained on the synthetic archive at 128 px, shipped in fixtures/ (ImageNet
# weights cannot be downloaded everywhere).
DEMO_BACKBONE = {"name": "synthnet", "weights": "fixture", "image_size": 128}


class Command(BaseCommand):
    help = (
        "Set up the embedded demo (database, a synthetic archive and its features, an admin account "
        "with a fresh password) and serve it on 127.0.0.1."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--images", type=int, default=300, help="Synthetic images (default 300)."
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-serve", action="store_true", help="Set up only; do not serve.")

    def handle(self, *args, images: int, seed: int, port: int, no_serve: bool, **options):
        call_command("migrate", interactive=False, verbosity=0)
        folder = Path(settings.DATA_DIR) / "archives" / f"{DEMO_ARCHIVE}-{images}-{seed}"
        instances = folder / "instances.json"
        if not instances.exists():
            self.stdout.write(f"Generating {images} synthetic images in {folder} ...")
            generate_archive(folder, n_images=images, seed=seed)
        result = archive_import_coco(
            archive_name=DEMO_ARCHIVE,
            instances_path=instances,
            image_dir=folder / "images",
            log=lambda message: None,
        )
        record = result.record
        self.stdout.write(
            f"Archive {DEMO_ARCHIVE}: {record.image_count} images, {record.annotation_count} annotations"
        )

        feature_set, _ = features_extract(
            archive=result.archive, backbone_config=DEMO_BACKBONE, enqueue=False
        )
        with tqdm(total=feature_set.n_rows, unit="img", desc="features", file=self.stderr) as bar:
            feature_set = feature_set_extract(
                feature_set=feature_set, progress=lambda done, total: bar.update(done - bar.n)
            )
        self.stdout.write(
            f"Features: {feature_set.n_rows} x {feature_set.dim} ({feature_set.backbone_config['name']})"
        )

        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(
            username="admin", defaults={"email": "admin@localhost"}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()

        base = f"http://127.0.0.1:{port}"
        self.stdout.write(
            self.style.SUCCESS(
                "\n".join(
                    [
                        "",
                        "studyplatform demo",
                        f"  site:      {base}/",
                        f"  admin:     {base}/admin/",
                        f"  API:       {base}/api/archives/",
                        "  username:  admin",
                        f"  password:  {password}",
                        "",
                    ]
                )
            )
        )
        self.stdout.flush()
        if not no_serve:
            call_command("runserver", f"127.0.0.1:{port}", use_reloader=False)
