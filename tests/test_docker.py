"""Checks of the deployment files: docker/Dockerfile, docker/compose.yml, docker/start/*,
docker/.env.example and .dockerignore.

No Docker engine is needed. The files are parsed and cross-checked against each other, and
``docker compose config`` validates the compose file when the docker client has the compose plugin.
"""

import fnmatch
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE_FILE = DOCKER / "compose.yml"
START_DIR = DOCKER / "start"
ENV_EXAMPLE = DOCKER / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"

APP_SERVICES = ("web", "worker", "gpu-worker", "beat")
BACKING_SERVICES = ("postgres", "redis")
START_SCRIPTS = ("web", "worker", "gpu-worker", "beat")
IMAGE = "studyplatform:latest"
SHEBANG = "#!/usr/bin/env bash"
STRICT_MODE = "set -o errexit -o nounset -o pipefail"

NAME = r"[A-Za-z_][A-Za-z0-9_]*"
ASSIGNMENT = re.compile(rf"^#?\s*({NAME})=")


@pytest.fixture(autouse=True)
def _media_root():
    """Replace the suite's per-test media fixture: these tests read files and need no Django."""


# --- helpers -----------------------------------------------------------------------------------


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict:
    return load_compose()["services"]


def script_text(name: str) -> str:
    return (START_DIR / name).read_text()


def logical_lines(text: str) -> list[str]:
    """Lines with backslash continuations joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n", " ", text)
    return [
        line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")
    ]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    lines = [
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")
    ]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        keyword, _, args = line.strip().partition(" ")
        instructions.append((keyword.upper(), " ".join(args.split())))
    return instructions


def parse_copy(args: str) -> tuple[dict[str, str], list[str], str]:
    """Split COPY arguments into (flags, sources, destination); shell and JSON forms."""
    words = shlex.split(args)
    flags = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    rest = " ".join(words)
    if rest.startswith("["):
        words = json.loads(rest)
    return flags, words[:-1], words[-1]


def stages() -> list[list[tuple[str, str]]]:
    """Instructions grouped by build stage (everything from one FROM up to the next)."""
    grouped: list[list[tuple[str, str]]] = []
    for keyword, args in dockerfile_instructions():
        if keyword == "FROM":
            grouped.append([])
        if grouped:
            grouped[-1].append((keyword, args))
    return grouped


def string_values(node) -> list[str]:
    """Every string value (not key) in a parsed YAML document."""
    if isinstance(node, dict):
        return [s for value in node.values() for s in string_values(value)]
    if isinstance(node, list):
        return [s for value in node for s in string_values(value)]
    return [node] if isinstance(node, str) else []


def compose_variables() -> set[str]:
    """Names interpolated by compose (``${VAR}``, ``${VAR:-x}``, ``$VAR``); ``$$`` is an escape."""
    names = set()
    for value in string_values(load_compose()):
        unescaped = value.replace("$$", "")
        names.update(re.findall(rf"\$\{{({NAME})", unescaped))
        names.update(re.findall(rf"\$({NAME})", unescaped))
    return names


def script_variables(name: str) -> set[str]:
    """Variables a start script reads from its environment (not ones it assigns itself)."""
    text = "\n".join(
        line for line in script_text(name).splitlines() if not line.lstrip().startswith("#")
    )
    read = set(re.findall(rf"\$\{{({NAME})", text)) | set(re.findall(rf"\$({NAME})", text))
    assigned = set(re.findall(rf"^\s*(?:local\s+|export\s+|declare\s+)?({NAME})=", text, re.M))
    return read - assigned


def env_example_entries() -> dict[str, str]:
    """Variable name -> its line in docker/.env.example, commented out or not."""
    entries = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = ASSIGNMENT.match(line)
        if match:
            assert match.group(1) not in entries, f"{match.group(1)} is listed twice"
            entries[match.group(1)] = line
    return entries


# --- compose.yml -------------------------------------------------------------------------------


def test_compose_file_parses_and_has_exactly_the_six_services():
    compose = load_compose()
    assert isinstance(compose, dict)
    assert set(compose["services"]) == {*APP_SERVICES, *BACKING_SERVICES}


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_service_uses_the_one_image_built_from_the_dockerfile(service):
    config = services()[service]
    assert config["image"] == IMAGE
    build = config["build"]
    context = (COMPOSE_FILE.parent / build["context"]).resolve()
    assert context == ROOT, f"{service} builds from {context}, not the repository root"
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE.resolve()
    assert DOCKERFILE.is_file()


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_service_runs_its_start_script(service):
    command = services()[service]["command"]
    assert command in (f"/start/{service}", [f"/start/{service}"])
    assert (START_DIR / service).is_file(), f"docker/start/{service} is missing"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_service_waits_for_healthy_postgres_and_redis(service):
    depends_on = services()[service]["depends_on"]
    for backing in BACKING_SERVICES:
        assert depends_on[backing]["condition"] == "service_healthy", (service, backing)
        assert "healthcheck" in services()[backing], f"{backing} has no healthcheck to wait for"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_service_mounts_the_data_and_media_volumes(service):
    mounts = dict(volume.rsplit(":", 1) for volume in services()[service]["volumes"])
    assert mounts.get("data") == "/app/data"
    assert mounts.get("media") == "/app/data/media"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_service_environment_points_at_the_compose_network(service):
    env = services()[service]["environment"]
    assert env["DJANGO_SETTINGS_MODULE"].endswith("studyplatform.settings.production}")
    assert "@postgres:5432/" in env["DATABASE_URL"]
    assert "redis://redis:6379/0" in env["CELERY_BROKER_URL"]
    assert "redis://redis:6379/1" in env["CELERY_RESULT_BACKEND"]
    assert "redis://redis:6379/2" in env["REDIS_URL"]
    assert env["STUDYPLATFORM_DATA_DIR"] == "/app/data"
    assert "SECRET_KEY" in env
    assert "ALLOWED_HOSTS" in env


def test_backing_services_have_their_healthchecks_and_storage():
    postgres, redis = services()["postgres"], services()["redis"]
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"} <= set(postgres["environment"])
    assert "postgres-data:/var/lib/postgresql/data" in postgres["volumes"]
    assert redis["image"].startswith("redis:7")
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])


def test_web_publishes_8000_and_checks_healthz_over_plain_http():
    web = services()["web"]
    assert "8000:8000" in web["ports"]
    assert web["environment"]["PORT"] == "8000"
    # No TLS proxy in front: a redirect to https would fail every health check.
    assert web["environment"]["SECURE_SSL_REDIRECT"].endswith(":-false}")
    check = " ".join(web["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/healthz" in check


class _HealthzHandler(http.server.BaseHTTPRequestHandler):
    hosts: list[str] = []

    def do_GET(self):
        type(self).hosts.append(self.headers["Host"])
        status = 200 if self.path == "/healthz" else 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(
    ("allowed_hosts", "expected_host"),
    [
        ("studies.example.org,localhost", "studies.example.org"),
        (".example.org", "example.org"),
        ("*", "localhost"),
    ],
)
def test_web_healthcheck_command_runs_and_sends_an_allowed_host(allowed_hosts, expected_host):
    test = services()["web"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    server = http.server.HTTPServer(("127.0.0.1", 0), _HealthzHandler)
    _HealthzHandler.hosts = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        code = test[3].replace("127.0.0.1:8000", f"127.0.0.1:{server.server_port}")
        result = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "ALLOWED_HOSTS": allowed_hosts},
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr
    assert _HealthzHandler.hosts == [expected_host]


def test_gpu_worker_reserves_an_nvidia_gpu():
    devices = services()["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        device.get("driver") == "nvidia"
        and device.get("count") == "all"
        and "gpu" in device.get("capabilities", [])
        for device in devices
    ), devices


def test_named_volumes_are_declared():
    compose = load_compose()
    declared = set(compose.get("volumes") or {})
    used = set()
    for config in compose["services"].values():
        for volume in config.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if not source.startswith((".", "/", "~", "$")):
                used.add(source)
    assert used, "no named volumes found"
    assert used <= declared, f"undeclared volumes: {sorted(used - declared)}"


# --- start scripts -----------------------------------------------------------------------------


def test_there_is_a_start_script_per_process():
    assert {path.name for path in START_DIR.iterdir()} == set(START_SCRIPTS)


@pytest.mark.parametrize("name", START_SCRIPTS)
def test_start_script_is_a_strict_executable_bash_script_ending_in_exec(name):
    path = START_DIR / name
    assert os.access(path, os.X_OK), f"docker/start/{name} is not executable (chmod 755)"
    text = path.read_text()
    assert "\r" not in text, "Windows line endings"
    lines = text.splitlines()
    assert lines[0] == SHEBANG
    assert lines[1] == STRICT_MODE
    last = [line for line in lines if line.strip()][-1]
    assert last.startswith("exec "), f"last line does not exec the process: {last!r}"
    # bash itself must accept the script.
    bash = shutil.which("bash")
    if bash:
        result = subprocess.run([bash, "-n", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", START_SCRIPTS)
def test_start_script_is_executable_in_git_when_tracked(name):
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        return
    result = subprocess.run(
        [git, "ls-files", "--stage", "--", f"docker/start/{name}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if result.returncode == 0 and result.stdout.strip():
        assert result.stdout.split()[0] == "100755", f"git add --chmod=+x docker/start/{name}"


def test_web_script_migrates_unless_disabled_then_execs_gunicorn():
    lines = logical_lines(script_text("web"))
    text = "\n".join(lines)
    assert "MIGRATE_ON_START:-1" in text
    assert "python manage.py migrate --noinput" in text
    exec_line = shlex.split(lines[-1])
    assert exec_line[:3] == ["exec", "gunicorn", "studyplatform.wsgi:application"]
    assert exec_line[exec_line.index("--bind") + 1] == "0.0.0.0:${PORT:-8000}"
    assert exec_line[exec_line.index("--workers") + 1] == "${WEB_CONCURRENCY:-2}"
    assert exec_line[exec_line.index("--access-logfile") + 1] == "-"
    assert exec_line[exec_line.index("--timeout") + 1] == "60"


def celery_command(name: str) -> list[str]:
    words = shlex.split(logical_lines(script_text(name))[-1])
    assert words[:4] == ["exec", "celery", "-A", "studyplatform"], words
    return words


def option(words: list[str], flag: str) -> str:
    assert flag in words, f"{flag} missing from {words}"
    return words[words.index(flag) + 1]


def test_gpu_worker_script_takes_one_gpu_task_at_a_time():
    words = celery_command("gpu-worker")
    assert words[4] == "worker"
    assert option(words, "--queues") == "gpu"
    assert option(words, "--prefetch-multiplier") == "1"
    assert option(words, "--concurrency") == "${GPU_WORKER_CONCURRENCY:-1}"
    assert option(words, "--hostname") == "gpu@%h"
    assert option(words, "--loglevel") == "${LOG_LEVEL:-INFO}"


def test_worker_script_consumes_the_default_queue():
    words = celery_command("worker")
    assert words[4] == "worker"
    assert option(words, "--queues") == "default"
    assert option(words, "--hostname") == "default@%h"
    assert option(words, "--loglevel") == "${LOG_LEVEL:-INFO}"


def test_beat_script_runs_beat():
    words = celery_command("beat")
    assert words[4] == "beat"
    assert option(words, "--loglevel") == "${LOG_LEVEL:-INFO}"


# --- Dockerfile and .dockerignore ----------------------------------------------------------------


def test_dockerfile_has_a_builder_stage_and_a_slim_runtime_stage():
    all_stages = stages()
    assert len(all_stages) >= 2, "expected a multi-stage build"
    names = []
    for stage in all_stages:
        words = stage[0][1].split()
        if len(words) == 3 and words[1].upper() == "AS":
            names.append(words[2])
    runtime = all_stages[-1]
    assert runtime[0][1].split()[0] == "python:3.11-slim-bookworm"
    for keyword, args in runtime:
        if keyword == "COPY":
            flags, _, _ = parse_copy(args)
            if "from" in flags:
                assert flags["from"] in names, f"COPY --from={flags['from']}: no such stage"


def test_dockerfile_copies_the_start_scripts_to_slash_start():
    copies = [parse_copy(args) for keyword, args in stages()[-1] if keyword == "COPY"]
    assert any(
        "from" not in flags
        and [source.rstrip("/") for source in sources] == ["docker/start"]
        and destination.rstrip("/") == "/start"
        for flags, sources, destination in copies
    ), copies


def test_dockerfile_copy_sources_exist_and_are_not_dockerignored():
    ignored = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for keyword, args in dockerfile_instructions():
        if keyword not in ("COPY", "ADD"):
            continue
        flags, sources, _ = parse_copy(args)
        if "from" in flags:
            continue
        for source in sources:
            relative = source.rstrip("/")
            if relative in (".", ""):
                continue
            assert (ROOT / relative).exists(), f"COPY source {source} does not exist"
            parts = Path(relative).parts
            for depth in range(1, len(parts) + 1):
                prefix = "/".join(parts[:depth])
                hits = [p for p in ignored if fnmatch.fnmatch(prefix, p.strip("/"))]
                assert not hits, f"{source} is excluded by .dockerignore {hits}"


def test_dockerfile_runs_as_a_non_root_user_with_production_settings():
    runtime = stages()[-1]
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users, "the runtime stage never switches away from root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    env = " ".join(args for keyword, args in runtime if keyword == "ENV")
    assert "DJANGO_SETTINGS_MODULE=studyplatform.settings.production" in env
    assert "PYTHONUNBUFFERED=1" in env
    assert "PATH=/opt/venv/bin:$PATH" in env
    assert ("EXPOSE", "8000") in runtime


def test_dockerfile_installs_the_lock_file_and_collects_static_files():
    instructions = dockerfile_instructions()
    runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert "pip install --no-cache-dir -r /tmp/requirements.lock" in runs
    assert "manage.py collectstatic --noinput" in runs


def test_dockerignore_keeps_local_state_out_of_the_build_context():
    patterns = {
        line.strip().strip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for path in (".git", ".venv", "data", ".env", "docker/.env", "node_modules", ".pytest_cache"):
        assert any(fnmatch.fnmatch(path, pattern) for pattern in patterns), path
    for path in ("studyplatform/__pycache__", "studyplatform/views.pyc"):
        assert any(fnmatch.fnmatch(path, p.replace("**/", "*")) for p in patterns), path


# --- .env.example ----------------------------------------------------------------------------


def test_env_example_lists_every_variable_compose_interpolates():
    missing = compose_variables() - set(env_example_entries())
    assert not missing, f"add to docker/.env.example: {sorted(missing)}"


@pytest.mark.parametrize("name", START_SCRIPTS)
def test_env_example_lists_every_variable_a_start_script_reads(name):
    variables = script_variables(name)
    missing = variables - set(env_example_entries())
    assert not missing, f"docker/start/{name} reads {sorted(missing)}, not in docker/.env.example"


def test_env_example_has_a_comment_for_each_variable():
    lines = ENV_EXAMPLE.read_text().splitlines()
    for index, line in enumerate(lines):
        if ASSIGNMENT.match(line):
            previous = lines[index - 1] if index else ""
            assert previous.startswith("#"), f"no comment above {line!r}"
            assert not ASSIGNMENT.match(previous), f"no comment of its own above {line!r}"


def test_env_example_leaves_required_variables_uncommented():
    text = COMPOSE_FILE.read_text()
    required = set(re.findall(rf"\$\{{({NAME}):?\?", text))
    assert {"SECRET_KEY", "POSTGRES_PASSWORD"} <= required
    entries = env_example_entries()
    for name in required:
        assert not entries[name].startswith("#"), f"{name} is required; list it uncommented"


# --- docker compose config ---------------------------------------------------------------------


def compose_cli() -> str:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker client is not installed")
    version = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=60
    )
    if version.returncode != 0:
        pytest.skip(
            "the docker client has no compose plugin (`docker compose` is not available): "
            + (version.stderr or version.stdout).strip().splitlines()[0]
        )
    return docker


def run_compose_config(docker: str, extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    env = {key: os.environ[key] for key in ("PATH", "HOME", "DOCKER_CONFIG") if key in os.environ}
    env.update(extra_env)
    return subprocess.run(
        [
            docker,
            "compose",
            "--file",
            str(COMPOSE_FILE),
            "--env-file",
            str(ENV_EXAMPLE),
            "config",
            "--format",
            "json",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_docker_compose_config_validates_the_file():
    docker = compose_cli()
    result = run_compose_config(
        docker, {"SECRET_KEY": "x" * 50, "POSTGRES_PASSWORD": "compose-config-check"}
    )
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert set(config["services"]) == {*APP_SERVICES, *BACKING_SERVICES}
    env = config["services"]["worker"]["environment"]
    assert env["DATABASE_URL"] == (
        "postgres://studyplatform:compose-config-check@postgres:5432/studyplatform"
    )
    assert env["SECURE_SSL_REDIRECT"] == "false"


def test_docker_compose_config_demands_the_secret_key():
    docker = compose_cli()
    result = run_compose_config(docker, {"POSTGRES_PASSWORD": "compose-config-check"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
