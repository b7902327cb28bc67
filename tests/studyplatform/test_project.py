"""Project-wide invariants: migrations match the models, management commands behave."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.django_db
def test_migrations_match_the_models():
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out)
    except SystemExit as exit_:
        pytest.fail(f"models changed without a migration:\n{out.getvalue()} ({exit_})")


def test_make_synthetic_archive_writes_the_archive(tmp_path):
    out = StringIO()

    call_command(
        "make_synthetic_archive",
        str(tmp_path / "a"),
        "--images",
        "5",
        "--seed",
        "2",
        stdout=out,
        stderr=StringIO(),
    )

    assert "Wrote 5 images" in out.getvalue()
    assert (tmp_path / "a" / "instances.json").is_file()
    assert len(list((tmp_path / "a" / "images").glob("*.jpg"))) == 5


def test_make_synthetic_archive_rejects_bad_arguments(tmp_path):
    with pytest.raises(CommandError, match="n_images"):
        call_command(
            "make_synthetic_archive",
            str(tmp_path / "a"),
            "--images",
            "0",
            stdout=StringIO(),
            stderr=StringIO(),
        )
    assert not (tmp_path / "a" / "instances.json").exists()
