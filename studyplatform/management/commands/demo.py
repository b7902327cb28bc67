"""``manage.py demo``: the whole platform on one machine, with no broker and no AWS.

In order, each step skipped when its result exists already (a second run starts fast):
database, a synthetic archive and its features, the demo study (``fixtures/studies/demo.yaml``)
live with its saliency maps, a copy of it run by simulated workers and analysed, the local
MTurk-compatible endpoint with the demo study published to it, an admin account with a fresh
password; then the site is served on 127.0.0.1.
"""

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from tqdm import tqdm

from retrieval.services import archive_import_coco
from retrieval.services.features import feature_set_create, feature_set_extract
from retrieval.synthetic import generate_archive

DEMO_ARCHIVE = "synthetic-demo"
# The small CNN trained on the synthetic archive at 128 px, shipped in fixtures/ (ImageNet
# weights cannot be downloaded everywhere).
DEMO_BACKBONE = {"name": "synthnet", "weights": "fixture", "image_size": 128}
DEMO_SPEC = Path(settings.BASE_DIR) / "fixtures" / "studies" / "demo.yaml"
SIMULATED_SLUG = "demo-simulated"
SIMULATED_WORKERS = 16
# Simulated MTurk workers of the local endpoint: id, locale, approved HITs, approval rate (%).
# The last one fails the demo study's qualifications, to show a refused accept.
MTURK_WORKERS = [
    ("A1DEMOWORKER01", "US", 5000, 99),
    ("A1DEMOWORKER02", "CA", 1200, 98),
    ("A1DEMOWORKER03", "US", 300, 97),
    ("A1DEMOWORKER04", "DE", 8000, 100),
]


class Command(BaseCommand):
    help = (
        "Set up the embedded demo (database, a synthetic archive and its features, the demo "
        "study with its saliency maps, a simulated run and its analysis, the local MTurk "
        "endpoint, an admin account with a fresh password) and serve it on 127.0.0.1."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--images", type=int, default=300, help="Synthetic images (default 300)."
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--mturk-port", type=int, default=8765, help="Local MTurk endpoint (0: any free)."
        )
        parser.add_argument("--no-serve", action="store_true", help="Set up only; do not serve.")

    def handle(self, *args, images, seed, port, mturk_port, no_serve, **options):
        call_command("migrate", interactive=False, verbosity=0)
        feature_set = self._features(images, seed)
        base = f"http://127.0.0.1:{port}"
        lines = ["", "studyplatform demo", f"  site:      {base}/", f"  admin:     {base}/admin/"]

        study, simulated = self._studies()
        if study is not None:
            lines.append(f"  lab HIT:   {base}/lab/{study.slug}/  (any participant code)")
        if simulated is not None:
            lines.append(f"  results:   {base}/analysis/{simulated.slug}/  (simulated workers)")
        server = None
        if study is not None and not no_serve:
            server = self._mturk(study, base, mturk_port)
            lines.append(f"  MTurk:     {server.url}/worker/  (local endpoint, simulated workers)")
        lines += [f"  API:       {base}/api/studies/", "  username:  admin"]
        lines.append(f"  password:  {self._admin_password()}")
        lines.append(f"  features:  {feature_set.n_rows} x {feature_set.dim} (synthnet)")
        self.stdout.write(self.style.SUCCESS("\n".join([*lines, ""])))
        self.stdout.flush()
        if not no_serve:
            try:
                call_command("runserver", f"127.0.0.1:{port}", use_reloader=False)
            finally:
                if server is not None:
                    server.stop()

    def _features(self, images: int, seed: int):
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
        feature_set, _ = feature_set_create(
            archive=result.archive, backbone_config=DEMO_BACKBONE, enqueue=False
        )
        with tqdm(total=feature_set.n_rows, unit="img", desc="features", file=self.stderr) as bar:
            return feature_set_extract(
                feature_set=feature_set, progress=lambda done, total: bar.update(done - bar.n)
            )

    def _studies(self):
        """The demo study, live with its maps, and its simulated copy, analysed; ``None`` for
        a study the archive cannot hold (too few images of the spec's classes)."""
        from analysis.services import analysis_run
        from analysis.simulation import study_simulate
        from explain.services import saliency_precompute_study
        from studyplatform.studies.models import Study
        from studyplatform.studies.services.specs import StudySpecError, study_spec_load
        from studyplatform.studies.services.studies import study_create_from_spec, study_status_set

        spec = study_spec_load(DEMO_SPEC)
        studies = []
        for slug in (spec["slug"], SIMULATED_SLUG):
            study = Study.objects.filter(slug=slug).first()
            if study is None:
                try:
                    study = study_create_from_spec(spec={**spec, "slug": slug})
                except StudySpecError as exc:
                    self.stderr.write(f"Demo study not created ({exc}); use more --images.")
                    return None, None
            if study.status == Study.Status.DRAFT:
                study_status_set(study=study, status=Study.Status.READY)
            if study.status == Study.Status.READY:
                study_status_set(study=study, status=Study.Status.LIVE)
            studies.append(study)
        study, simulated = studies

        with tqdm(unit="map", desc="saliency maps", file=self.stderr) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            saliency_precompute_study(study=study, sync=True, progress=progress)

        if not simulated.assignments.exists():
            report = study_simulate(study=simulated, workers=SIMULATED_WORKERS, seed=0)
            self.stdout.write(
                f"Simulated study {simulated.slug}: {report.submitted} workers submitted, "
                f"{report.judgements} judgements"
            )
        analysis_run(study=simulated)
        return study, simulated

    def _mturk(self, study, base: str, port: int):
        """Start the local MTurk endpoint, let the HIT pages be framed by it and submit to it,
        and publish ``study`` there (once)."""
        from mturk.client import mturk_client
        from mturk.local.server import LocalMTurkServer
        from mturk.selectors import study_is_published
        from mturk.services import hit_publish

        state = Path(settings.DATA_DIR) / "mturk-local.sqlite3"
        server = LocalMTurkServer(state=str(state), port=port).start()
        for worker_id, country, approved, rate in MTURK_WORKERS:
            server.store.worker_add(
                worker_id=worker_id, country=country, approved_count=approved, approval_rate=rate
            )
        settings.HIT_FRAME_ANCESTORS = [*settings.HIT_FRAME_ANCESTORS, server.url]
        settings.HIT_EXTRA_SUBMIT_ORIGINS = [*settings.HIT_EXTRA_SUBMIT_ORIGINS, server.url]
        settings.PUBLIC_BASE_URL = base
        if not study_is_published(study=study):
            client = mturk_client(environment="local", endpoint_url=server.url)
            result = hit_publish(study=study, client=client, confirm=True)
            assignments = sum(hit.max_assignments for hit in result.hits)
            self.stdout.write(
                f"Published {study.slug} to the local MTurk endpoint: {len(result.hits)} HITs, "
                f"{assignments} assignments"
            )
        return server

    def _admin_password(self) -> str:
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(
            username="admin", defaults={"email": "admin@localhost"}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        return password
