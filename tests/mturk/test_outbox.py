"""The outbox: side effects written with the state change's transaction, once per key."""

from __future__ import annotations

import pytest
from django.db import transaction

from studyplatform.outbox.models import OutboxEntry
from studyplatform.outbox.services import OutboxKeyConflict, outbox_enqueue

GRANT = "mturk.tasks.mturk_participation_grant"


@pytest.mark.django_db
def test_an_entry_of_a_rolled_back_transaction_is_not_kept():
    def change_that_fails() -> None:
        with transaction.atomic():
            outbox_enqueue(task=GRANT, args=[1], key="participation-grant:1")
            raise RuntimeError("the state change failed")

    with pytest.raises(RuntimeError):
        change_that_fails()

    assert not OutboxEntry.objects.exists()


@pytest.mark.django_db
def test_the_same_key_is_one_entry_and_another_effect_under_it_is_refused(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    with transaction.atomic():
        first = outbox_enqueue(task="studyplatform.outbox.tasks.outbox_sweep", args=[], key="k")
        again = outbox_enqueue(task="studyplatform.outbox.tasks.outbox_sweep", args=[], key="k")

    assert first.pk == again.pk
    assert OutboxEntry.objects.count() == 1
    with pytest.raises(OutboxKeyConflict, match="already holds"):
        outbox_enqueue(task=GRANT, args=[2], key="k")
