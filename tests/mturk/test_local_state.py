"""The local endpoint's state: it survives a restart on the same file, older state files are
upgraded, and ten concurrent clients keep ``MaxAssignments`` and request tokens exact."""

from __future__ import annotations

import sqlite3
import threading
import urllib.error
import urllib.request

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from mturk.local import LocalMTurkServer, Store
from tests.conftest import free_port

QUESTION = (
    '<ExternalQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
    '2006-07-14/ExternalQuestion.xsd"><ExternalURL>https://example.org/task</ExternalURL>'
    "<FrameHeight>600</FrameHeight></ExternalQuestion>"
)
THREADS = 10


def client_for(url: str):
    return boto3.client(
        "mturk",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="AKIDRESEARCHER",
        aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}),
    )


def create_hit(client, **extra):
    return client.create_hit(
        Title="Find images",
        Description="Search twice.",
        Reward="0.50",
        AssignmentDurationInSeconds=600,
        LifetimeInSeconds=3600,
        Question=QUESTION,
        **extra,
    )["HIT"]["HITId"]


def run_together(target, count: int = THREADS) -> list:
    """Run ``target(i)`` in ``count`` threads released at once; results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_state_survives_a_restart(tmp_path, aws_env):
    state = str(tmp_path / "mturk.sqlite3")
    server = LocalMTurkServer(state=state, port=free_port()).start()
    try:
        client = client_for(server.url)
        hit_id = create_hit(client, MaxAssignments=2, UniqueRequestToken="launch-1")
        server.store.worker_add(worker_id="AW1")
        assignment = server.store.assignment_accept(worker_id="AW1", hit_id=hit_id)
        server.store.assignment_submit(
            assignment_id=assignment["AssignmentId"], answers={"done": "1"}
        )
        client.create_worker_block(WorkerId="AW9", Reason="spam")
    finally:
        server.stop()
    server = LocalMTurkServer(state=state, port=free_port()).start()
    try:
        client = client_for(server.url)
        hit = client.get_hit(HITId=hit_id)["HIT"]
        assert hit["NumberOfAssignmentsCompleted"] == 1
        [listed] = client.list_assignments_for_hit(HITId=hit_id)["Assignments"]
        assert listed["WorkerId"] == "AW1"
        assert client.list_worker_blocks()["WorkerBlocks"][0]["WorkerId"] == "AW9"
        with pytest.raises(client.exceptions.RequestError) as caught:
            create_hit(client, MaxAssignments=2, UniqueRequestToken="launch-1")
        assert hit_id in caught.value.response["Error"]["Message"]
        assert client.list_hits()["NumResults"] == 1
    finally:
        server.stop()


def test_a_state_file_of_the_first_version_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE hits (id TEXT PRIMARY KEY, hit_type_id TEXT NOT NULL,
            max_assignments INTEGER NOT NULL, question TEXT, annotation TEXT, created REAL,
            expiration REAL);
        CREATE TABLE qualifications (type_id TEXT NOT NULL, worker_id TEXT NOT NULL,
            value INTEGER, granted REAL, PRIMARY KEY (type_id, worker_id));
        INSERT INTO hits VALUES ('HOLD', 'TOLD', 1, '', '', 0, 1);
        INSERT INTO qualifications VALUES ('QOLD', 'AW1', 1, 0);
        """
    )
    db.close()
    Store(str(path))
    db = sqlite3.connect(path)
    assert db.execute("SELECT review_status, reviewing, deleted FROM hits").fetchone() == (
        "NotReviewed",
        0,
        None,
    )
    assert db.execute("SELECT status FROM qualifications").fetchone() == ("Granted",)
    db.close()


def test_ten_clients_with_one_token_create_one_hit(local_mturk):
    clients = [client_for(local_mturk.url) for _ in range(THREADS)]
    results = run_together(lambda i: create_hit(clients[i], UniqueRequestToken="same-launch"))
    created = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, botocore.exceptions.ClientError)]
    assert len(created) == 1
    assert len(refused) == THREADS - 1
    assert {r.response["TurkErrorCode"] for r in refused} == {"AWS.MechanicalTurk.HitAlreadyExists"}
    assert all(created[0] in r.response["Error"]["Message"] for r in refused)
    assert clients[0].list_hits()["NumResults"] == 1


def test_ten_clients_with_one_bonus_token_pay_once(local_mturk):
    client = client_for(local_mturk.url)
    hit_id = create_hit(client)
    local_mturk.worker("AW1")
    assignment = local_mturk.accept("AW1", hit_id)
    local_mturk.control("submit", {"assignment_id": assignment})
    clients = [client_for(local_mturk.url) for _ in range(THREADS)]
    results = run_together(
        lambda i: clients[i].send_bonus(
            WorkerId="AW1",
            AssignmentId=assignment,
            BonusAmount="1.00",
            Reason="thanks",
            UniqueRequestToken="bonus-AW1",
        )
    )
    assert sum(isinstance(r, dict) for r in results) == 1
    assert len(local_mturk.store.bonuses()) == 1
    assert client.get_account_balance()["AvailableBalance"] == "9998.80"


def test_ten_workers_accepting_at_once_fill_max_assignments_exactly(local_mturk):
    client = client_for(local_mturk.url)
    hit_id = create_hit(client, MaxAssignments=3)
    workers = [f"AW{i}" for i in range(THREADS)]
    for worker in workers:
        local_mturk.worker(worker)

    def accept(i: int) -> int:
        request = urllib.request.Request(
            f"{local_mturk.url}/worker/{workers[i]}/hits/{hit_id}/accept", data=b"", method="POST"
        )
        try:
            with urllib.request.urlopen(request) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    statuses = run_together(accept)
    assert sorted(statuses) == [200] * 3 + [400] * 7
    hit = client.get_hit(HITId=hit_id)["HIT"]
    assert hit["NumberOfAssignmentsPending"] == 3
    assert hit["HITStatus"] == "Unassignable"


def test_concurrent_extensions_with_distinct_tokens_all_count(local_mturk):
    client = client_for(local_mturk.url)
    hit_id = create_hit(client, MaxAssignments=10)
    clients = [client_for(local_mturk.url) for _ in range(THREADS)]
    results = run_together(
        lambda i: clients[i].create_additional_assignments_for_hit(
            HITId=hit_id, NumberOfAdditionalAssignments=1, UniqueRequestToken=f"extend-{i % 5}"
        )
    )
    assert sum(isinstance(r, dict) for r in results) == 5
    assert client.get_hit(HITId=hit_id)["HIT"]["MaxAssignments"] == 15
