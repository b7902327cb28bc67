"""The web tier stays small: no torch, torchvision, numba, scikit-learn or matplotlib in a web
process.

Each check runs in a fresh interpreter (the test process itself has imported everything), with
the development settings a web process uses.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "numba", "sklearn", "matplotlib")

# Imports the WSGI application, every views/apis/admin/urls module of the project's packages and
# every view behind the URLconf, then prints which heavy packages got loaded.
_WEB_PROCESS = """
import importlib, json, pathlib, sys
from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver
from django.urls.resolvers import URLResolver

get_wsgi_application()
def web(stem):
    return stem == "admin" or stem.startswith(("views", "apis", "urls")) or stem.endswith("_api")
modules = []
for package in ("studyplatform", "retrieval", "explain", "mturk", "analysis"):
    # Found on disk: walking the packages would import every package on the way.
    for path in sorted(pathlib.Path(package).rglob("*.py")):
        if web(path.stem):
            name = ".".join(path.with_suffix("").parts)
            modules.append(importlib.import_module(name).__name__)

def views(resolver):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from views(pattern)
        else:
            yield pattern.callback

n_views = sum(1 for _ in views(get_resolver()))
print(json.dumps({"modules": modules, "views": n_views,
                  "heavy": sorted(m for m in HEAVY if m in sys.modules)}))
"""


def _env(tmp_path) -> dict:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="studyplatform.settings.dev", STUDYPLATFORM_DATA_DIR=str(tmp_path)
    )
    return env


@pytest.mark.slow
def test_manage_py_check_loads_no_heavy_package(tmp_path):
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "manage.py", "check"],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in run.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "django.core.management" in imported  # the listing is real
    assert imported.isdisjoint(HEAVY), sorted(imported & set(HEAVY))


@pytest.mark.slow
def test_a_web_process_imports_every_view_without_heavy_packages(tmp_path):
    run = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n" + _WEB_PROCESS],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert "studyplatform.admin" in report["modules"]
    assert "studyplatform.studies.views" in report["modules"]
    assert "explain.admin" in report["modules"]
    assert "studyplatform.studies.urls_hit" in report["modules"]
    assert report["views"] > 50
    assert report["heavy"] == []


def test_the_study_admin_is_the_wiring_one_with_the_other_apps_actions():
    from django.contrib import admin

    from studyplatform.admin import PlatformStudyAdmin
    from studyplatform.studies.models import Study

    registered = admin.site._registry[Study]
    assert type(registered) is PlatformStudyAdmin
    assert "precompute_saliency" in registered.actions
    assert "results" in registered.list_display
    assert "saliency_maps" in registered.readonly_fields


def _first_party_imports_swallowed() -> list[str]:
    """'path:line' of every ``try`` that imports one of the project's packages and catches
    ImportError: a broken import there would silently skip the work instead of failing."""
    import ast

    packages = ("studyplatform", "retrieval", "explain", "mturk", "analysis")
    found = []
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Try):
                    continue
                caught = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
                if not caught & {"ImportError", "ModuleNotFoundError"}:
                    continue
                for statement in ast.walk(ast.Module(body=node.body, type_ignores=[])):
                    if isinstance(statement, ast.ImportFrom) and statement.level:
                        module = package
                    elif isinstance(statement, ast.ImportFrom):
                        module = statement.module or ""
                    elif isinstance(statement, ast.Import):
                        module = statement.names[0].name
                    else:
                        continue
                    if module.split(".")[0] in packages:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_import_of_the_project_is_wrapped_in_except_import_error():
    assert _first_party_imports_swallowed() == []
