"""docker-compose.yml: valid Compose, and wired to the services, images and configs it names.

No Docker engine is needed: the file is validated against the official Compose
specification schema (as shipped, with its license, by the check-jsonschema package, a
dev dependency), and its references are followed to the Dockerfiles and config files
they point at.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA_FILE = Path(
    str(resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json")
)
SERVICE_DIRS = sorted(p.parent for p in (ROOT / "services").glob("*/pyproject.toml"))
PLATFORM_SERVICES = [p.name for p in SERVICE_DIRS]

Compose = dict[str, Any]


def load_compose() -> Compose:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@cache
def _compose() -> Compose:
    return load_compose()


@pytest.fixture
def compose() -> Compose:
    return copy.deepcopy(_compose())


@cache
def compose_validator() -> Validator:
    """A validator for the draft the schema declares, with format checks switched on."""
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["title"] == "Compose Specification"
    validator_type = validator_for(schema, default=None)
    assert validator_type is not None, f"unknown $schema {schema.get('$schema')!r}"
    validator_type.check_schema(schema)
    return validator_type(schema, format_checker=validator_type.FORMAT_CHECKER)


def schema_errors(document: Compose) -> list[str]:
    errors = compose_validator().iter_errors(document)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


_DEFAULTED = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose's `${VAR:-default}` with an empty environment: the defaults this file ships."""
    return _DEFAULTED.sub(lambda m: m.group(2) or "", value)


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """depends_on in either syntax, as {service: condition}."""
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def container_port(service: dict[str, Any]) -> int:
    """The one port a platform service publishes, on the container side."""
    (port,) = service["ports"]
    return int(interpolate(str(port)).rsplit(":", 1)[1].split("/")[0])


# --- Dockerfiles ------------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def find(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@dataclass
class Dockerfile:
    global_args: list[str]
    stages: list[Stage]

    def stage(self, name: str | None) -> Stage:
        if name is None:
            return self.stages[-1]
        (match,) = [s for s in self.stages if s.name == name]
        return match


def _logical_lines(text: str) -> Iterator[str]:
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"


@cache
def parse_dockerfile(path: Path) -> Dockerfile:
    """Enough of the Dockerfile grammar to follow stages: instructions per FROM."""
    global_args: list[str] = []
    stages: list[Stage] = []
    for line in _logical_lines(path.read_text()):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else None
            stages.append(Stage(base=words[0], name=name))
        elif not stages:
            assert keyword == "ARG", f"{path}: only ARG may come before the first FROM"
            global_args.append(args)
        else:
            stages[-1].instructions.append((keyword, args))
    assert stages, f"{path} has no FROM"
    return Dockerfile(global_args, stages)


def dockerfile_of(service: dict[str, Any]) -> Path:
    build = service["build"]
    context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
    name = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    return context / name


def image_healthcheck(compose: Compose, service_name: str) -> str | None:
    """The HEALTHCHECK the service's image inherits, following stages and base-image services."""
    service = compose["services"][service_name]
    if "build" not in service:
        return None  # an upstream image: its checks are not visible from here
    build = service["build"]
    contexts = {} if isinstance(build, str) else build.get("additional_contexts", {})
    dockerfile = parse_dockerfile(dockerfile_of(service))
    stage = dockerfile.stage(None if isinstance(build, str) else build.get("target"))
    while True:
        checks = stage.find("HEALTHCHECK")
        if checks:
            return None if checks[-1].upper() == "NONE" else checks[-1]
        if any(s.name == stage.base for s in dockerfile.stages):
            stage = dockerfile.stage(stage.base)
            continue
        reference = contexts.get(stage.base, "")
        if reference.startswith("service:"):
            return image_healthcheck(compose, reference.removeprefix("service:"))
        return None


def has_healthcheck(compose: Compose, name: str) -> bool:
    check = compose["services"][name].get("healthcheck")
    if check is not None:
        return not check.get("disable", False) and bool(check.get("test"))
    return image_healthcheck(compose, name) is not None


# --- the compose file against the Compose specification -----------------------------------


def test_compose_file_is_valid_compose(compose: Compose) -> None:
    assert schema_errors(compose) == []
    assert "version" not in compose, "the Compose spec ignores `version:`; leave it out"


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda c: c.update(servcies={}), "servcies"),
        (
            lambda c: c["services"]["gateway"]["depends_on"]["kafka"].update(condition="ready"),
            "ready",
        ),
        (lambda c: c["services"]["kafka"].update(restart_policy="always"), "restart_policy"),
        (lambda c: c["services"].update({"bad name": {"image": "x"}}), "bad name"),
        (lambda c: c["services"]["gateway"]["build"].update(dockerfil="x"), "dockerfil"),
    ],
    ids=[
        "unknown-top-level-key",
        "bad-depends-on-condition",
        "unknown-service-key",
        "bad-service-name",
        "unknown-build-key",
    ],
)
def test_schema_rejects_a_broken_copy(compose: Compose, breakage: Any, expected: str) -> None:
    breakage(compose)
    errors = schema_errors(compose)
    assert errors, "the schema accepted a broken compose file: validation is not running"
    assert any(expected in error for error in errors), errors


# --- services and their images -----------------------------------------------------------------


def test_every_service_package_has_a_compose_service_built_from_its_dockerfile(
    compose: Compose,
) -> None:
    assert len(PLATFORM_SERVICES) >= 8
    for service_dir in SERVICE_DIRS:
        name = service_dir.name
        assert name in compose["services"], f"services/{name} has no compose service"
        build = compose["services"][name].get("build")
        assert isinstance(build, dict), f"{name} is not built from the repository"
        assert (ROOT / build["context"]).resolve() == ROOT, f"{name}: context must be the root"
        assert dockerfile_of(compose["services"][name]) == service_dir / "Dockerfile"
        assert (service_dir / "Dockerfile").is_file()


def test_every_build_points_at_an_existing_dockerfile_and_stage(compose: Compose) -> None:
    built = {n: s for n, s in compose["services"].items() if "build" in s}
    assert built
    for name, service in built.items():
        dockerfile = dockerfile_of(service)
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        build = service["build"]
        target = None if isinstance(build, str) else build.get("target")
        if target is not None:
            assert target in {s.name for s in parse_dockerfile(dockerfile).stages}, (name, target)
        contexts = {} if isinstance(build, str) else build.get("additional_contexts", {})
        for context_name, reference in contexts.items():
            if reference.startswith("service:"):
                base = reference.removeprefix("service:")
                assert "build" in compose["services"].get(base, {}), (name, context_name, base)
            else:
                assert (ROOT / reference).exists(), (name, context_name, reference)


def test_service_dockerfiles_pin_their_service_on_the_shared_base_stages(
    compose: Compose,
) -> None:
    for service_dir in SERVICE_DIRS:
        name = service_dir.name
        service = compose["services"][name]
        dockerfile = parse_dockerfile(service_dir / "Dockerfile")
        assert dockerfile.global_args == [f"SERVICE={name}"], name
        build, runtime = dockerfile.stages
        assert (build.base, build.name, runtime.base) == (
            "llmops-builder",
            "build",
            "llmops-runtime",
        )
        contexts = service["build"]["additional_contexts"]
        for base, target in (("llmops-builder", "builder"), ("llmops-runtime", "runtime")):
            base_service = compose["services"][contexts[base].removeprefix("service:")]
            assert base_service["build"]["target"] == target
            assert base_service.get("scale") == 0, "base stages are built, never run"
        module = f"llmops_{name}"
        assert runtime.find("CMD") == [json.dumps(["python", "-m", module])]
        assert (service_dir / "src" / module / "__main__.py").is_file()
        port = container_port(service)
        assert runtime.find("EXPOSE") == [str(port)]
        env = dict(kv.split("=", 1) for kv in " ".join(runtime.find("ENV")).split())
        assert env == {f"{name.upper()}_HOST": "0.0.0.0", f"{name.upper()}_PORT": str(port)}


def test_shared_build_installs_one_package_and_runs_unprivileged() -> None:
    dockerfile = parse_dockerfile(ROOT / "infra/docker/service.Dockerfile")
    builder, runtime = dockerfile.stage("builder"), dockerfile.stage("runtime")
    assert builder.base == runtime.base == "${PYTHON_IMAGE}"
    assert "PYTHON_IMAGE=python:3.11-slim" in dockerfile.global_args
    assert any(re.search(r"pip install \"?uv==", run) for run in builder.find("RUN"))
    syncs = [t for t in builder.find("ONBUILD") if "uv sync" in t]
    assert len(syncs) == 2, "dependencies and workspace packages are installed in two layers"
    for sync in syncs:
        assert "--mount=type=cache,target=/root/.cache/uv" in sync
        assert re.search(r"uv sync --frozen --no-dev .*--package \"llmops-\$\{SERVICE\}\"", sync)
    assert "--no-install-workspace" in syncs[0]
    assert "--no-editable" in syncs[1]
    assert "ARG SERVICE" in runtime.find("ONBUILD")
    assert "COPY --from=build /app/.venv /app/.venv" in runtime.find("ONBUILD")
    (user,) = runtime.find("USER")
    assert user.split(":")[0] not in {"root", "0"}
    (healthcheck,) = runtime.find("HEALTHCHECK")
    assert healthcheck.endswith('CMD ["python", "/usr/local/bin/llmops-healthcheck"]')
    assert "infra/docker/healthcheck.py /usr/local/bin/llmops-healthcheck" in " ".join(
        runtime.find("COPY")
    )
    script = (ROOT / "infra/docker/healthcheck.py").read_text()
    assert "urllib.request" in script
    assert "/healthz" in script


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".llmops", "**/__pycache__"} <= ignored
    needed = ("pyproject.toml", "uv.lock", "libs", "services", "infra/docker")
    assert not ignored & set(needed), "the image build needs these"


# --- runtime wiring -----------------------------------------------------------------------


def test_healthy_dependencies_have_a_healthcheck(compose: Compose) -> None:
    targets = {
        target
        for service in compose["services"].values()
        for target, condition in depends_on(service).items()
        if condition == "service_healthy"
    }
    assert {"kafka", "mongodb", "qdrant"} <= targets
    for target in targets:
        assert has_healthcheck(compose, target), f"{target} is waited on but has no healthcheck"


def test_every_depends_on_names_a_service(compose: Compose) -> None:
    for name, service in compose["services"].items():
        for target in depends_on(service):
            assert target in compose["services"], (name, target)


def test_platform_services_share_env_wait_for_infra_and_topics(compose: Compose) -> None:
    shared_env = compose["x-platform-env"]
    assert shared_env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert interpolate(shared_env["MONGODB_URL"]).endswith("@mongodb:27017/?authSource=admin")
    assert shared_env["QDRANT_URL"] == "http://qdrant:6333"
    assert shared_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    for name in PLATFORM_SERVICES:
        service = compose["services"][name]
        assert service.get("restart") in {"unless-stopped", "always", "on-failure"}, name
        assert has_healthcheck(compose, name), name
        env = service["environment"]
        assert {k: env[k] for k in shared_env} == shared_env, f"{name} drifted from x-platform-env"
        assert env["OTEL_SERVICE_NAME"] == name
        deps = depends_on(service)
        assert deps["kafka"] == deps["mongodb"] == "service_healthy", name
        assert deps["topics-init"] == "service_completed_successfully", name
    assert depends_on(compose["services"]["indexer"])["qdrant"] == "service_healthy"


def test_topics_init_creates_topics_once_kafka_is_healthy(compose: Compose) -> None:
    topics_init = compose["services"]["topics-init"]
    assert topics_init["command"] == ["llmops-topics", "ensure"]
    assert topics_init["image"] == compose["services"]["gateway"]["image"]
    assert depends_on(topics_init) == {"kafka": "service_healthy"}
    assert topics_init["restart"] == "no"
    assert topics_init["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    scripts = tomllib.loads((ROOT / "libs/llmops/pyproject.toml").read_text())["project"]["scripts"]
    assert "llmops-topics" in scripts


def test_ports_are_published_on_loopback_only(compose: Compose) -> None:
    published = 0
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            published += 1
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", (name, port)
            else:
                assert interpolate(str(port)).startswith("127.0.0.1:"), (name, port)
    assert published >= len(PLATFORM_SERVICES)


def test_named_volumes_are_declared_and_config_mounts_exist(compose: Compose) -> None:
    mounted_configs = 0
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
                mounted_configs += source.startswith("./infra/")
            else:
                assert source in compose["volumes"], f"{name}: volume {source} is not declared"
    assert mounted_configs >= 3


def test_prometheus_scrapes_every_platform_service_and_the_collector(compose: Compose) -> None:
    config = yaml.safe_load((ROOT / "infra/compose/prometheus.yml").read_text())
    targets = {
        (job.get("metrics_path", "/metrics"), target)
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    for name in PLATFORM_SERVICES:
        port = container_port(compose["services"][name])
        assert ("/metrics", f"{name}:{port}") in targets, f"{name}:{port}/metrics not scraped"
    assert ("/metrics", "otel-collector:8888") in targets


def test_collector_sends_traces_to_jaeger_and_grafana_sees_both_stores(compose: Compose) -> None:
    collector = yaml.safe_load((ROOT / "infra/compose/otel-collector.yaml").read_text())
    traces = collector["service"]["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"]
    exporters = {name: collector["exporters"][name] for name in traces["exporters"]}
    assert "debug" in exporters
    assert any(
        name.startswith("otlp") and cfg["endpoint"] == "jaeger:4317"
        for name, cfg in exporters.items()
    )
    assert "jaeger" in compose["services"]
    provisioning = ROOT / "infra/compose/grafana/provisioning/datasources/datasources.yaml"
    datasources = yaml.safe_load(provisioning.read_text())["datasources"]
    assert {(d["type"], d["url"]) for d in datasources} == {
        ("prometheus", "http://prometheus:9090"),
        ("jaeger", "http://jaeger:16686"),
    }
    grafana_env = compose["services"]["grafana"]["environment"]
    assert interpolate(grafana_env["GF_AUTH_ANONYMOUS_ENABLED"]) == "false"
    assert "${GRAFANA_ADMIN_PASSWORD" in grafana_env["GF_SECURITY_ADMIN_PASSWORD"]
