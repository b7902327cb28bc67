"""Fixtures of the MTurk tests: the local endpoint on a free port, a boto3 client pointed at
it, and a small study built from plain model rows (an archive with 6 images in 3 classes, a
feature set row, two conditions and ``N_PAIRS`` task pairs; 4 workers per pair).

Nothing reaches AWS: the credentials are dummies, the instance-metadata lookup is disabled and
every client's endpoint is the local server.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from decimal import Decimal

import pytest

from tests.conftest import free_port

N_PAIRS = 6
REPETITIONS = 4  # distinct workers per pair, both orders together
SEED001_MTURK = {
    "title": "Find images of an object",
    "description": "Search an image archive twice, then answer a few questions.",
    "keywords": ["image", "search"],
    "reward": "1.50",
    "lifetime_hours": 72,
    "assignment_duration_minutes": 60,
    "auto_approval_delay_hours": 72,
    "frame_height": 900,
    "qualifications": {
        "locales": ["US", "CA"],
        "approved_hits_at_least": 1000,
        "approval_rate_above": 97,
        "exclude_participated": True,
    },
}


class LocalMTurk:
    """The running endpoint: ``url``, ``store`` and the control API."""

    def __init__(self, server) -> None:
        self.server = server
        self.url = server.url
        self.store = server.store

    def control(self, name: str, data: dict) -> dict:
        request = urllib.request.Request(
            f"{self.url}/_control/{name}", data=json.dumps(data).encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(request) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(json.loads(exc.read())["Message"]) from None

    def refused(self, name: str, data: dict) -> str:
        """The error message of a control call that must fail."""
        request = urllib.request.Request(
            f"{self.url}/_control/{name}", data=json.dumps(data).encode(), method="POST"
        )
        try:
            urllib.request.urlopen(request)
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())["Message"]
        raise AssertionError(f"control {name} {data} was not refused")

    def fault(self, operation: str, kind: str, count: int = 1) -> None:
        self.control("faults", {"operation": operation, "kind": kind, "count": count})

    def worker(self, worker_id: str, **fields) -> dict:
        return self.control("workers", {"worker_id": worker_id, **fields})

    def accept(self, worker_id: str, hit_id: str) -> str:
        return self.control("accept", {"worker_id": worker_id, "hit_id": hit_id})["AssignmentId"]

    def post_form(self, path: str, form: dict) -> tuple[int, str]:
        from urllib.parse import urlencode

        request = urllib.request.Request(
            self.url + path, data=urlencode(form).encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def calls(self, operation: str) -> int:
        return self.store.counts()["calls"].get(operation, 0)


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Dummy AWS credentials and no lookups outside the process."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDLOCALTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local-test-secret")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "MTURK_ALLOW_PRODUCTION"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def local_mturk(tmp_path, aws_env, settings):
    from mturk.local import LocalMTurkServer

    server = LocalMTurkServer(state=str(tmp_path / "mturk.sqlite3"), port=free_port()).start()
    settings.MTURK_LOCAL_URL = server.url
    settings.MTURK_MAX_ATTEMPTS = 3
    settings.PUBLIC_BASE_URL = "http://testserver"
    try:
        yield LocalMTurk(server)
    finally:
        server.stop()


@pytest.fixture
def client(local_mturk):
    from mturk.client import mturk_client

    return mturk_client(environment="local", endpoint_url=local_mturk.url)


@pytest.fixture
def study(db):
    """A live study: 3 classes x 2 query images, conditions no-xai and sbsm, N_PAIRS pairs."""
    from retrieval.models import Archive, Category, FeatureSet, Image, ImageDirectory
    from studyplatform.studies.models import Condition, QueryImage, Study, TaskPair

    archive = Archive.objects.create(name="mturk-test")
    directory = ImageDirectory.objects.create(archive=archive, path="/tmp/mturk-test")
    feature_set = FeatureSet.objects.create(
        archive=archive,
        backbone_config={"name": "synthnet"},
        config_key="0" * 64,
        path="mturk-test.npy",
    )
    study = Study.objects.create(
        slug="mturk-test",
        title="MTurk test study",
        archive=archive,
        feature_set=feature_set,
        repetitions=REPETITIONS,
        mturk=json.loads(json.dumps(SEED001_MTURK)),
        status=Study.Status.LIVE,
    )
    no_xai = Condition.objects.create(study=study, name="no-xai")
    sbsm = Condition.objects.create(study=study, name="sbsm", method="sbsm")
    queries = []
    for c in range(3):
        category = Category.objects.create(archive=archive, coco_id=c + 1, name=f"class{c}")
        for k in range(2):
            image = Image.objects.create(
                archive=archive,
                directory=directory,
                coco_id=10 * c + k,
                file_name=f"{c}_{k}.jpg",
                width=64,
                height=64,
            )
            queries.append(QueryImage.objects.create(study=study, image=image, category=category))
    for number in range(N_PAIRS):
        a = queries[number % 6]
        b = queries[(number + 2) % 6]
        TaskPair.objects.create(
            study=study, number=number, query_a=a, condition_a=no_xai, query_b=b, condition_b=sbsm
        )
    return study


def platform_assignment(
    *, study, worker_id: str, mturk_assignment_id: str, hit_id: str, status="active"
):
    """The platform's row for a worker who opened the HIT page (as the HIT page's
    ``assignment_start`` would make it)."""
    from studyplatform.studies.models import Assignment, Participant

    participant, _ = Participant.objects.get_or_create(source="mturk", external_id=worker_id)
    used = Assignment.objects.filter(study=study).count()
    pair = study.task_pairs.order_by("number")[used % N_PAIRS]
    return Assignment.objects.create(
        study=study,
        participant=participant,
        task_pair=pair,
        order="ab" if used % 2 == 0 else "ba",
        status=status,
        mturk_assignment_id=mturk_assignment_id,
        hit_id=hit_id,
        turk_submit_to="http://127.0.0.1",
    )


def money(text: str) -> Decimal:
    return Decimal(text)
