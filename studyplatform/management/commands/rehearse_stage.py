"""``manage.py rehearse_stage setup|publish|finish``: one step of ``manage.py rehearse`` run
inside the platform, under the rehearsal stack's settings; writes its result as JSON."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from studyplatform.rehearsal.stages import (
    rehearsal_finish,
    rehearsal_publish,
    rehearsal_setup,
    write_json,
)


class Command(BaseCommand):
    help = "One step of the rehearsal (used by manage.py rehearse)."

    def add_arguments(self, parser):
        parser.add_argument("stage", choices=["setup", "publish", "finish"])
        parser.add_argument("--out", type=Path, required=True, help="JSON result file.")
        parser.add_argument("--images", type=int, default=2000)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--folder", type=Path, help="Where the synthetic archive goes.")
        parser.add_argument("--saliency", default="{}", help="SBSM overrides, JSON.")
        parser.add_argument("--study", default="seed001")
        parser.add_argument("--mturk-url")
        parser.add_argument("--mturk-state", type=Path)
        parser.add_argument("--drive", type=Path, help="The crowd's drive.json (finish).")

    def handle(self, *args, stage, out, **options):
        if stage == "setup":
            if options["images"] < 500:
                raise CommandError("--images must be >= 500 for seed 001's 160 query images")
            result = rehearsal_setup(
                images=options["images"],
                seed=options["seed"],
                folder=options["folder"],
                saliency=json.loads(options["saliency"]),
                log=self.stdout.write,
            )
        elif stage == "publish":
            result = rehearsal_publish(study_slug=options["study"], mturk_url=options["mturk_url"])
        else:
            drive = json.loads(options["drive"].read_text())
            result = rehearsal_finish(
                study_slug=options["study"],
                mturk_url=options["mturk_url"],
                mturk_state=options["mturk_state"],
                drive=drive,
            )
        write_json(out, result)
