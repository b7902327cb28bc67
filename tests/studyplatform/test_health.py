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
    assert response.json() == {"status": "error", "database": "unavailable"}
    assert b"connection refused" not in response.content


@pytest.mark.django_db
def test_openapi_schema_is_served_to_staff_only(admin_client, client):
    assert client.get("/api/schema/").status_code in (401, 403)
    response = admin_client.get("/api/schema/")

    assert response.status_code == 200
    assert b"/api/archives/" in response.content


def test_analysis_tables_escape_class_names_before_they_are_marked_safe():
    import pandas as pd

    from analysis.views import _html

    frame = pd.DataFrame(
        {"<b>share</b>": [0.5]}, index=pd.Index(["<script>alert(1)</script>"], name="class")
    )

    html = _html(frame, percent=("<b>share</b>",))

    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;share&lt;/b&gt;" in html
    assert "50.0%" in html
