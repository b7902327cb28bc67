import pytest
from django.db import connection


@pytest.mark.django_db
def test_health_check_reports_the_database(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": connection.vendor}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_health_check_fails_when_the_database_does_not_answer(client, monkeypatch):
    def broken_cursor(*args, **kwargs):
        raise RuntimeError("connection refused")

    monkeypatch.setattr(connection, "cursor", broken_cursor)
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["database"] == "connection refused"


@pytest.mark.django_db
def test_openapi_schema_is_served_to_staff(admin_client):
    response = admin_client.get("/api/schema/")

    assert response.status_code == 200
    assert b"/api/archives/" in response.content
