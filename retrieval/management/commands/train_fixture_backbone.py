import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from retrieval.backbones import FIXTURE_DIR
from retrieval.fixture_backbone import train_synthnet
from retrieval.synthetic import generate_archive

# The shipped fixture: 2000 images of seed 0 at 160 px, trained for 15 epochs at 128 px.
DEFAULT_EPOCHS = 15


class Command(BaseCommand):
    help = (
        "Generate a synthetic archive in a temporary folder and train the small SynthNet "
        "backbone on it (CPU, deterministic); writes weights + metadata to one file."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--images", type=int, default=2000, help="Images in the archive (default 2000)."
        )
        parser.add_argument(
            "--seed", type=int, default=0, help="Archive and training seed (default 0)."
        )
        parser.add_argument(
            "--epochs",
            type=int,
            default=DEFAULT_EPOCHS,
            help=f"Training epochs (default {DEFAULT_EPOCHS}).",
        )
        parser.add_argument(
            "--out",
            type=Path,
            default=FIXTURE_DIR / "synthnet.pt",
            help="Output file (default fixtures/backbones/synthnet.pt).",
        )

    def handle(self, *args, images: int, seed: int, epochs: int, out: Path, **options):
        quiet = options["verbosity"] == 0
        with tempfile.TemporaryDirectory(prefix="synthnet-archive-") as folder:
            bar = tqdm(total=images, unit="img", desc="archive", disable=quiet, file=self.stderr)
            try:
                generate_archive(
                    folder, n_images=images, seed=seed, progress=lambda n: bar.update(n - bar.n)
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            finally:
                bar.close()

            bar = tqdm(unit="step", desc="train", disable=quiet, file=self.stderr)

            def progress(step: int, total: int, loss: float) -> None:
                bar.total = total
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                bar.update(step - bar.n)

            try:
                result = train_synthnet(folder, out, epochs=epochs, seed=seed, progress=progress)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            finally:
                bar.close()

        self.stdout.write(
            f"final training loss {result['final_train_loss']:.4f}, held-out loss "
            f"{result['held_out_loss']:.4f}, held-out mAP {result['held_out_map']:.4f} "
            f"({result['held_out_images']} images), {result['seconds']:.0f} s"
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {result['path']} ({result['bytes']} bytes, sha256 {result['sha256']})"
            )
        )
