from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from retrieval.synthetic import generate_archive


class Command(BaseCommand):
    help = (
        "Write a synthetic COCO-format archive (JPEG images + instances.json) with seed 001's 24 "
        "query classes, deterministic from the seed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "out_dir", type=Path, help="Folder to write (images/ and instances.json)."
        )
        parser.add_argument(
            "--images", type=int, default=2000, help="Number of images (default 2000)."
        )
        parser.add_argument("--seed", type=int, default=0, help="Random seed (default 0).")
        parser.add_argument(
            "--size", type=int, default=160, help="Image side in pixels (default 160)."
        )

    def handle(self, *args, out_dir: Path, images: int, seed: int, size: int, **options):
        bar = tqdm(total=images, unit="img", disable=options["verbosity"] == 0, file=self.stderr)
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            bar.update(n - done)
            done = n

        try:
            path = generate_archive(
                out_dir, n_images=images, seed=seed, image_size=size, progress=progress
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        self.stdout.write(self.style.SUCCESS(f"Wrote {images} images and {path}"))
