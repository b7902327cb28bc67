"""The staff-only results page, its figures and downloads, and the results API."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from analysis.admin import results_link
from tests.analysis.test_study_selectors import build_study, played_study


@pytest.fixture
def study(db):
    return played_study(workers=4, permutations=100)


def test_staff_see_the_tables_figures_and_download_buttons(admin_client, study):
    response = admin_client.get("/analysis/tiny/")
    assert response.status_code == 200
    page = response.content.decode()
    for heading in ("Table 1", "Table 2", "permutation tests", "Questionnaires", "Figures"):
        assert heading in page
    assert "/analysis/tiny/figures/figure4.png" in page
    for fmt in ("csv", "xlsx", "json", "latex"):
        assert f"/analysis/tiny/download/{fmt}/" in page
    assert "8 search tasks" in page


def test_the_page_says_why_when_there_is_no_data_yet(admin_client, db):
    build_study()
    response = admin_client.get("/analysis/tiny/")
    assert response.status_code == 200
    assert "no completed search task" in response.content.decode()


def test_people_who_are_not_staff_are_sent_to_the_login(client, django_user_model, study):
    user = django_user_model.objects.create_user(username="worker", password="pw-12345-xyz")
    client.force_login(user)
    for url in (
        "/analysis/tiny/",
        "/analysis/tiny/figures/figure4.png",
        "/analysis/tiny/download/csv/",
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]


def test_figures_are_served_as_png_and_svg(admin_client, study):
    png = admin_client.get("/analysis/tiny/figures/accuracy.png")
    assert png["Content-Type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    svg = admin_client.get("/analysis/tiny/figures/figure5.svg")
    assert svg["Content-Type"] == "image/svg+xml"
    assert b"<svg" in svg.content
    assert admin_client.get("/analysis/tiny/figures/figure9.png").status_code == 404


def test_the_xlsx_download_opens_with_every_sheet(admin_client, study):
    response = admin_client.get("/analysis/tiny/download/xlsx/")
    assert response.status_code == 200
    assert 'filename="tiny-analysis.xlsx"' in response["Content-Disposition"]
    sheets = pd.read_excel(io.BytesIO(response.content), sheet_name=None)
    assert {"tasks", "table1", "table2", "tests", "likert", "notes"} <= set(sheets)
    assert admin_client.get("/analysis/tiny/download/pdf/").status_code == 404


def test_the_api_serves_the_same_tables_as_json(admin_client, study):
    body = admin_client.get("/api/analysis/tiny/").json()
    assert body["study"] == "tiny"
    assert set(body["tables"]) == {"tasks", "table1", "table2", "tests", "class_ratios", "likert"}
    raw = {
        (r["cell"], r["condition"]): r["value"]
        for r in body["tables"]["table1"]
        if r["attribute"] == "qD-raw"
    }
    assert raw[("CS", "no-XAI")] == 2
    assert raw[("CS", "with-XAI")] == 2
    tests = admin_client.get("/api/analysis/tiny/tests/").json()
    assert {r["attribute"] for r in tests["rows"]} == {"nP", "nA", "T"}
    assert admin_client.get("/api/analysis/tiny/nothing/").status_code == 404


def test_the_api_is_for_staff_and_says_when_the_analysis_cannot_run(client, admin_client, db):
    build_study()
    assert client.get("/api/analysis/tiny/").status_code in (401, 403)
    response = admin_client.get("/api/analysis/tiny/")
    assert response.status_code == 409
    assert "no completed search task" in response.json()["detail"]


def test_the_study_admin_link_points_at_the_results_page(study):
    assert 'href="/analysis/tiny/"' in results_link(study)
