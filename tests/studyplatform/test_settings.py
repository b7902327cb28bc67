"""Settings come from the environment; production refuses to start half-configured."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "studyplatform.settings.production",
    "SECRET_KEY": "k" * 20 + "a-long-random-production-key-for-this-test-0123456789",
    "ALLOWED_HOSTS": "studies.example.org",
}


def run(args: list[str], env: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    """Run a Python command in a clean environment (no DATABASE_URL etc. from the caller)."""
    clean = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "TMPDIR"}}
    clean["STUDYPLATFORM_DATA_DIR"] = str(tmp_path / "data")
    return subprocess.run(
        [sys.executable, *args],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def settings_of(module: str, env: dict[str, str], tmp_path, *names: str) -> dict:
    code = (
        "import json, django; from django.conf import settings; django.setup();"
        f"print(json.dumps({{n: getattr(settings, n) for n in {list(names)!r}}}, default=str))"
    )
    done = run(["-c", code], {"DJANGO_SETTINGS_MODULE": module, **env}, tmp_path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_check_deploy_with_production_settings_reports_no_warnings(tmp_path):
    done = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], PRODUCTION_ENV, tmp_path
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS"])
def test_production_refuses_to_start_without_its_secrets(tmp_path, missing):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}

    done = run(["manage.py", "check"], env, tmp_path)

    assert done.returncode != 0
    assert f"{missing} is not set" in done.stderr


def test_embedded_defaults_need_no_server(tmp_path):
    found = settings_of(
        "studyplatform.settings.dev",
        {},
        tmp_path,
        "DEBUG",
        "DATABASES",
        "CELERY_TASK_ALWAYS_EAGER",
        "STORAGES",
        "MEDIA_ROOT",
        "CACHES",
    )

    assert found["DEBUG"] is True
    assert found["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert found["DATABASES"]["default"]["NAME"] == str(tmp_path / "data" / "db.sqlite3")
    assert found["CELERY_TASK_ALWAYS_EAGER"] is True
    assert found["STORAGES"]["default"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"
    assert found["MEDIA_ROOT"] == str(tmp_path / "data" / "media")
    assert "LocMemCache" in found["CACHES"]["default"]["BACKEND"]


def test_services_are_taken_from_the_environment(tmp_path):
    env = {
        "DATABASE_URL": "postgres://u:p@db.example.org:5433/studies",
        "CELERY_BROKER_URL": "redis://broker:6379/0",
        "REDIS_URL": "redis://cache:6379/2",
        "AWS_STORAGE_BUCKET_NAME": "maps-bucket",
        "AWS_S3_REGION_NAME": "us-east-1",
    }
    found = settings_of(
        "studyplatform.settings.dev",
        env,
        tmp_path,
        "DATABASES",
        "CELERY_TASK_ALWAYS_EAGER",
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "STORAGES",
        "CACHES",
    )

    database = found["DATABASES"]["default"]
    assert (database["ENGINE"], database["HOST"], database["PORT"], database["NAME"]) == (
        "django.db.backends.postgresql",
        "db.example.org",
        5433,
        "studies",
    )
    assert found["CELERY_TASK_ALWAYS_EAGER"] is False
    assert found["CELERY_BROKER_URL"] == "redis://broker:6379/0"
    assert found["CELERY_RESULT_BACKEND"] == "redis://cache:6379/2"
    assert found["STORAGES"]["default"]["BACKEND"] == "storages.backends.s3.S3Storage"
    assert found["STORAGES"]["default"]["OPTIONS"]["bucket_name"] == "maps-bucket"
    assert found["CACHES"]["default"]["LOCATION"] == "redis://cache:6379/2"


def test_dev_secret_key_is_generated_once_and_kept_private(tmp_path):
    first = settings_of("studyplatform.settings.dev", {}, tmp_path, "SECRET_KEY")["SECRET_KEY"]
    second = settings_of("studyplatform.settings.dev", {}, tmp_path, "SECRET_KEY")["SECRET_KEY"]

    key_file = tmp_path / "data" / "secret_key"
    assert first == second == key_file.read_text()
    assert len(first) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_debug_is_off_outside_dev(tmp_path):
    assert settings_of("studyplatform.settings.production", PRODUCTION_ENV, tmp_path, "DEBUG") == {
        "DEBUG": False
    }


def test_a_malformed_boolean_is_named(tmp_path):
    done = run(["manage.py", "check"], {**PRODUCTION_ENV, "SECURE_SSL_REDIRECT": "maybe"}, tmp_path)

    assert done.returncode != 0
    assert "SECURE_SSL_REDIRECT='maybe' is not a boolean" in done.stderr


def test_the_forwarded_proto_header_is_trusted_only_behind_a_tls_proxy(tmp_path):
    behind = settings_of(
        "studyplatform.settings.production", PRODUCTION_ENV, tmp_path, "SECURE_PROXY_SSL_HEADER"
    )
    direct = settings_of(
        "studyplatform.settings.production",
        {**PRODUCTION_ENV, "BEHIND_TLS_PROXY": "false"},
        tmp_path,
        "SECURE_PROXY_SSL_HEADER",
    )

    assert behind["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert direct["SECURE_PROXY_SSL_HEADER"] is None
