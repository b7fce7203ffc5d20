"""deploy/ checked without a container runtime: the Dockerfile (hadolint and our own rules),
the compose file (the Compose Specification's schema and cross-references) and the Kubernetes
manifests (every service, probe, Secret and ConfigMap reference, setting name, image, security
context and resource request), plus the health check they all run.

Each rule is a function returning what it finds wrong, so that ``test_rule_bites`` can show it
failing on a mutated copy of the real file: a rule that cannot fail checks nothing.
"""

from __future__ import annotations

import copy
import datetime as dt
import importlib.util
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from cryptography import x509
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from sealmark.errors import InvalidArgument
from sealmark.settings import SERVICES, Settings, load_settings
from sealmark_app.cli import health as health_cli

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
PROTO_NAMES = {name: f"sealmark.v1.{name.capitalize()}" for name in SERVICES}
PROBE_MODULE = ["python", "-m", "sealmark_app.cli.health"]

# The TLS settings of docs/tls.md: the files a service reads must be mounted where they point.
TLS_FILES = frozenset(
    {
        "SEALMARK_TLS_CERT_FILE",
        "SEALMARK_TLS_KEY_FILE",
        "SEALMARK_TLS_CLIENT_CA_FILE",
    }
)


def settings_names() -> frozenset[str]:
    """Every SEALMARK_* variable Settings reads, from its fields (plus the config file's)."""
    fields = {f"SEALMARK_{name.upper()}" for name in Settings.model_fields}
    return frozenset(fields | {"SEALMARK_CONFIG"})


def unknown_settings(names: Iterator[str] | list[str] | set[str]) -> list[str]:
    known = settings_names()
    return sorted({n for n in names if n.startswith("SEALMARK_") and n not in known})


# ---------------------------------------------------------------------------------- loading


def load_yaml_all(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    assert all(isinstance(d, dict) for d in docs), path
    return docs


def k8s_objects() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            objects += load_yaml_all(path)
    return objects


def compose_doc() -> dict[str, Any]:
    [doc] = load_yaml_all(COMPOSE)
    return doc


def load_make_dev_secrets() -> ModuleType:
    path = DEPLOY / "compose" / "make_dev_secrets.py"
    spec = importlib.util.spec_from_file_location("make_dev_secrets", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def flag(command: list[str], name: str) -> str | None:
    """The value after ``name`` in an argv list, or None."""
    for i, arg in enumerate(command[:-1]):
        if arg == name:
            return command[i + 1]
    return None


def probe_port(command: list[str]) -> int | None:
    target = flag(command, "--target")
    if target is None:
        return None
    return int(target.rsplit(":", 1)[1])


# ---------------------------------------------------------------------------- the settings


def test_settings_names_come_from_the_settings_class() -> None:
    names = settings_names()
    assert {"SEALMARK_DATABASE_URL", "SEALMARK_REDIS_URL", "SEALMARK_GRPC_PORT"} <= names
    assert unknown_settings(["SEALMARK_DATABASE_URL", "SEALMARK_DATABSE_URL"]) == [
        "SEALMARK_DATABSE_URL"
    ]


def test_the_tls_settings_deploy_uses_are_settings() -> None:
    """deploy/ names the TLS settings of docs/tls.md; Settings must read exactly those."""
    assert TLS_FILES | {"SEALMARK_ALLOW_INSECURE"} <= settings_names()


def test_every_sealmark_variable_named_in_deploy_is_a_setting() -> None:
    """An unknown SEALMARK_* variable stops a service at startup (Settings forbids extras),
    so a typo anywhere in deploy/ (manifests, Dockerfile, README, units) is a bug."""
    used: set[str] = set()
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.suffix != ".json" and "secrets" not in path.parts:
            text = path.read_text(encoding="utf-8")
            used |= {m for m in re.findall(r"SEALMARK_[A-Z0-9_]+", text) if not m.endswith("_")}
    assert len(used) > 10
    assert unknown_settings(used) == []


# ------------------------------------------------------------------------------ Dockerfile


def dockerfile_rows(text: str) -> list[dict[str, Any]]:
    """dockerfile-parse's instructions (continuation lines joined), read from memory: given a
    path or none, the parser writes the file."""
    rows: list[dict[str, Any]] = DockerfileParser(fileobj=io.BytesIO(text.encode())).structure
    return rows


def dockerfile_problems(text: str) -> list[str]:
    rows = dockerfile_rows(text)
    problems: list[str] = []
    froms = [r for r in rows if r["instruction"] == "FROM"]
    if len(froms) < 2:
        problems.append("not multi-stage: want a build stage and a runtime stage")
    stages: list[str] = []
    for row in froms:
        words = row["value"].split()
        image = words[0]
        if len(words) >= 3 and words[1].upper() == "AS":
            stages.append(words[2])
        _, _, tag = image.partition(":")
        if "@sha256:" not in image and (not tag or tag == "latest" or "$" in image):
            problems.append(f"FROM {image}: pin the base image's tag (not latest)")
        if "slim" not in tag and "@sha256:" not in image:
            problems.append(f"FROM {image}: want a slim base")
    if "latest" in text.lower():
        problems.append("'latest' appears: pin every image and package")
    final_start = max((r["startline"] for r in froms), default=0)
    final = [r for r in rows if r["startline"] >= final_start]
    users = [r["value"].strip() for r in final if r["instruction"] == "USER"]
    if not users:
        problems.append("the runtime stage sets no USER (runs as root)")
    elif users[-1].split(":")[0] in {"root", "0"}:
        problems.append(f"USER {users[-1]}: the runtime stage must not run as root")
    checks = [r["value"] for r in final if r["instruction"] == "HEALTHCHECK"]
    if not checks:
        problems.append("no HEALTHCHECK in the runtime stage")
    elif not any("sealmark_app.cli.health" in c for c in checks):
        problems.append("HEALTHCHECK does not ask grpc.health.v1 (sealmark_app.cli.health)")
    for row in rows:
        value = row["value"]
        if row["instruction"] == "ADD" and re.search(r"\b(https?|ftp)://", value):
            problems.append(f"line {row['startline'] + 1}: ADD of a URL (download in RUN)")
        if row["instruction"] == "RUN" and "apt-get install" in value:
            if "rm -rf /var/lib/apt/lists" not in value:
                problems.append(f"line {row['startline'] + 1}: apt lists not cleaned")
            if "--no-install-recommends" not in value:
                problems.append(f"line {row['startline'] + 1}: apt-get without --no-install-")
        if row["instruction"] == "COPY" and "--from=" in value:
            source = value.split("--from=", 1)[1].split()[0]
            if source not in stages:
                problems.append(f"COPY --from={source}: no such earlier stage")
    if not any(r["instruction"] == "RUN" and "pip install" in r["value"] for r in rows):
        problems.append("the package is not installed (no pip install)")
    return problems


def hadolint_findings(text: str, tmp_path: Path) -> list[str]:
    binary = Path(sys.executable).parent / "hadolint"
    path = tmp_path / "Dockerfile"
    path.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [str(binary), "--no-color", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return [f"{f['code']} line {f['line']}: {f['message']}" for f in json.loads(done.stdout)]


def test_dockerfile_rules() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text(encoding="utf-8")) == []


def test_dockerfile_hadolint(tmp_path: Path) -> None:
    assert hadolint_findings(DOCKERFILE.read_text(encoding="utf-8"), tmp_path) == []


def test_hadolint_bites(tmp_path: Path) -> None:
    bad = DOCKERFILE.read_text(encoding="utf-8").replace(
        "apt-get install -y --no-install-recommends 'tini=0.19.0-1*'", "apt-get install tini"
    )
    codes = {f.split()[0] for f in hadolint_findings(bad, tmp_path)}
    assert {"DL3008", "DL3015", "DL3014"} <= codes


def test_dockerignore_admits_what_the_dockerfile_copies_and_nothing_else() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "**", "exclude everything first, then admit the sources"
    admitted = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied: set[str] = set()
    for row in dockerfile_rows(DOCKERFILE.read_text(encoding="utf-8")):
        if row["instruction"] == "COPY" and "--from=" not in row["value"]:
            copied |= set(row["value"].split()[:-1])
    assert copied == admitted
    assert not any("secrets" in a or a.startswith(".") for a in admitted)


def test_the_image_copies_every_package_the_project_installs() -> None:
    """A package left out of the image breaks the entry point or an import at run time."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert {"sealmark", "sealmark_app", "issuer"} <= packages
    copied: set[str] = set()
    for row in dockerfile_rows(DOCKERFILE.read_text(encoding="utf-8")):
        if row["instruction"] == "COPY" and "--from=" not in row["value"]:
            copied |= set(row["value"].split()[:-1])
    assert packages <= copied, f"not copied into the image: {sorted(packages - copied)}"
    entry = project["project"]["scripts"]["sealmark"].partition(":")[0].split(".")[0]
    assert entry in copied


def test_constraints_pin_every_runtime_dependency_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins: dict[str, str] = {}
    for line in (DEPLOY / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned is not None, f"{requirement.name} is not pinned in deploy/constraints.txt"
        assert requirement.specifier.contains(pinned), f"{requirement.name}=={pinned}: {spec}"


# --------------------------------------------------------------------------------- compose


def compose_problems(doc: dict[str, Any]) -> list[str]:
    schema = json.loads((DEPLOY / "compose" / "schema" / "compose-spec.json").read_text())
    problems = [
        f"schema: {'/'.join(map(str, e.path))}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(doc)
    ]
    services: dict[str, Any] = doc.get("services", {})
    declared_secrets = set(doc.get("secrets", {}))
    images = set()
    for required in ("postgres", "redis", "migrate"):
        if required not in services:
            problems.append(f"no {required} service")
    if services.get("migrate", {}).get("command") != ["migrate"]:
        problems.append("the migrate service does not run `sealmark migrate`")
    for name, service in services.items():
        image = str(service.get("image", ""))
        if ":" not in image or image.endswith(":latest"):
            problems.append(f"{name}: image {image!r}: pin a tag")
        mounted: set[str] = set()
        for entry in service.get("secrets", []):
            source = entry if isinstance(entry, str) else entry["source"]
            target = entry.get("target", source) if isinstance(entry, dict) else source
            if source not in declared_secrets:
                problems.append(f"{name}: secret {source!r} is not declared")
            mounted.add(target if target.startswith("/") else f"/run/secrets/{target}")
        env = service.get("environment", {})
        if not isinstance(env, dict):
            problems.append(f"{name}: environment as a mapping, please")
            env = {}
        if name in ("postgres", "redis"):
            continue
        images.add(image)
        problems += [f"{name}: {n} is no setting" for n in unknown_settings(set(env))]
        for key in ("SEALMARK_CONFIG", *sorted(TLS_FILES)):
            value = env.get(key)
            if isinstance(value, str) and value.startswith("/") and value not in mounted:
                problems.append(f"{name}: {key}={value} is not mounted")
        for path in re.findall(r"=(/[^&]+)", str(env.get("SEALMARK_REDIS_URL", ""))):
            if path not in mounted:
                problems.append(f"{name}: the Redis URL names {path}, which is not mounted")
    for name in SERVICES:
        service = services.get(name)
        if service is None:
            problems.append(f"service {name} is missing")
            continue
        if service.get("command") != ["serve", name]:
            problems.append(f"{name}: command is not ['serve', '{name}']")
        after = service.get("depends_on", {}).get("migrate", {})
        if after.get("condition") != "service_completed_successfully":
            problems.append(f"{name}: does not wait for the migrate service to succeed")
        if "SEALMARK_TLS_CERT_FILE" not in service.get("environment", {}):
            problems.append(f"{name}: no TLS certificate (SEALMARK_TLS_CERT_FILE)")
        port = int(service.get("environment", {}).get("SEALMARK_GRPC_PORT", 50051))
        published = {int(str(p).rsplit(":", 1)[1]) for p in service.get("ports", [])}
        if port not in published:
            problems.append(f"{name}: gRPC port {port} is not published")
        test = service.get("healthcheck", {}).get("test", [])
        command = test[1:] if test[:1] == ["CMD"] else []
        problems += probe_problems(f"{name} healthcheck", command, name, {port}, mounted)
    if len(images) != 1:
        problems.append(f"the Sealmark containers use different images: {sorted(images)}")
    return problems


def probe_problems(
    where: str, command: list[str], service: str, ports: set[int], mounted: set[str]
) -> list[str]:
    """An exec health check: sealmark_app.cli.health on a declared port, with a mounted CA."""
    if command[:3] != PROBE_MODULE:
        return [f"{where}: not `python -m sealmark_app.cli.health`: {command}"]
    problems = []
    if probe_port(command) not in ports:
        problems.append(f"{where}: targets port {probe_port(command)}, declared {ports}")
    asked = flag(command, "--service")
    if asked not in ("", PROTO_NAMES[service]):
        problems.append(f"{where}: asks about {asked!r}, want {PROTO_NAMES[service]}")
    ca = flag(command, "--ca")
    if ca is None:
        problems.append(f"{where}: no --ca (the gRPC ports speak TLS)")
    elif not any(ca == m or ca.startswith(m.rstrip("/") + "/") for m in mounted):
        problems.append(f"{where}: --ca {ca} is not mounted")
    return problems


def test_compose() -> None:
    assert compose_problems(compose_doc()) == []


def test_compose_secret_files_are_what_make_dev_secrets_writes(tmp_path: Path) -> None:
    written = load_make_dev_secrets().make(tmp_path / "secrets")
    files = {Path(s["file"]).name for s in compose_doc()["secrets"].values()}
    assert files <= set(written)
    assert {p.name for p in (tmp_path / "secrets").iterdir()} == set(written)


# ------------------------------------------------------------------------------ Kubernetes


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o.get("kind") == kind}


def data_keys(obj: dict[str, Any]) -> set[str]:
    return set(obj.get("data") or {}) | set(obj.get("stringData") or {})


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def k8s_problems(objects: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    secrets, maps = by_kind(objects, "Secret"), by_kind(objects, "ConfigMap")
    deployments, jobs = by_kind(objects, "Deployment"), by_kind(objects, "Job")
    services, budgets = by_kind(objects, "Service"), by_kind(objects, "PodDisruptionBudget")
    images: set[str] = set()
    for kind, objs in (("Deployment", deployments), ("Job", jobs)):
        for obj in objs.values():
            where = f"{kind} {obj['metadata']['name']}"
            pod = obj["spec"]["template"]["spec"]
            problems += pod_problems(where, pod, secrets, maps, images)
    if len(images) != 1:
        problems.append(f"the containers use different images: {sorted(images)}")
    if not any(c.get("args") == ["migrate"] for j in jobs.values() for c in containers(j)):
        problems.append("no Job runs `sealmark migrate`")
    for name in SERVICES:
        matching = [d for d in deployments.values() if args_of(d) == ["serve", name]]
        if len(matching) != 1:
            problems.append(f"want one Deployment running `sealmark serve {name}`")
            continue
        deployment = matching[0]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        if not selects(deployment["spec"]["selector"]["matchLabels"], labels):
            problems.append(f"{name}: the Deployment's selector misses its own pods")
        ports = {p["name"]: p["containerPort"] for p in containers(deployment)[0]["ports"]}
        svc = [s for s in services.values() if selects(s["spec"].get("selector", {}), labels)]
        if not svc:
            problems.append(f"{name}: no Service selects its pods")
        for s in svc:
            for port in s["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                if target not in ports and target not in ports.values():
                    problems.append(f"{name}: Service port {target} is no container port")
        pdb = [
            b
            for b in budgets.values()
            if selects(b["spec"].get("selector", {}).get("matchLabels", {}), labels)
        ]
        if not pdb:
            problems.append(f"{name}: no PodDisruptionBudget selects its pods")
        container = containers(deployment)[0]
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            probe = container.get(kind)
            if probe is None:
                if kind != "startupProbe":
                    problems.append(f"{name}: no {kind}")
                continue
            if "grpc" in probe:  # the kubelet's own (plaintext only, see deploy/README.md)
                if probe["grpc"]["port"] not in ports.values():
                    problems.append(f"{name} {kind}: port {probe['grpc']['port']} undeclared")
                continue
            command = probe.get("exec", {}).get("command", [])
            problems += probe_problems(f"{name} {kind}", command, name, set(ports.values()), mounts)
            if kind == "readinessProbe" and flag(command, "--service") != PROTO_NAMES[name]:
                problems.append(f"{name}: readiness must ask about {PROTO_NAMES[name]}")
    return problems


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    return listed


def args_of(obj: dict[str, Any]) -> list[str]:
    args: list[str] = containers(obj)[0].get("args", [])
    return args


def pod_problems(
    where: str,
    pod: dict[str, Any],
    secrets: dict[str, dict[str, Any]],
    maps: dict[str, dict[str, Any]],
    images: set[str],
) -> list[str]:
    problems: list[str] = []
    pod_security = pod.get("securityContext", {})
    if pod_security.get("runAsNonRoot") is not True or pod_security.get("runAsUser", 0) == 0:
        problems.append(f"{where}: the pod must run as a non-root user (runAsNonRoot, runAsUser)")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for volume in volumes.values():
        if "secret" in volume:
            name = volume["secret"]["secretName"]
            if name not in secrets:
                problems.append(f"{where}: volume {volume['name']}: no Secret {name}")
                continue
            for item in volume["secret"].get("items", []):
                if item["key"] not in data_keys(secrets[name]):
                    problems.append(f"{where}: Secret {name} has no key {item['key']}")
        if "configMap" in volume and volume["configMap"]["name"] not in maps:
            problems.append(f"{where}: no ConfigMap {volume['configMap']['name']}")
    for container in pod["containers"]:
        cwhere = f"{where} container {container['name']}"
        image = container.get("image", "")
        images.add(image)
        if ":" not in image or image.endswith(":latest"):
            problems.append(f"{cwhere}: image {image!r}: pin a tag")
        security = container.get("securityContext", {})
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{cwhere}: allowPrivilegeEscalation must be false")
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{cwhere}: readOnlyRootFilesystem must be true")
        if "ALL" not in security.get("capabilities", {}).get("drop", []):
            problems.append(f"{cwhere}: drop ALL capabilities")
        if security.get("runAsUser") == 0 or security.get("runAsNonRoot") is False:
            problems.append(f"{cwhere}: runs as root")
        resources = container.get("resources", {})
        for need in ("cpu", "memory"):
            if need not in resources.get("requests", {}):
                problems.append(f"{cwhere}: no {need} request")
        if "memory" not in resources.get("limits", {}):
            problems.append(f"{cwhere}: no memory limit")
        names: set[str] = set()
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                ref = source["configMapRef"]["name"]
                if ref not in maps:
                    problems.append(f"{cwhere}: no ConfigMap {ref}")
                else:
                    names |= data_keys(maps[ref])
            if "secretRef" in source:
                ref = source["secretRef"]["name"]
                if ref not in secrets:
                    problems.append(f"{cwhere}: no Secret {ref}")
                else:
                    names |= data_keys(secrets[ref])
        for var in container.get("env", []):
            names.add(var["name"])
            ref = var.get("valueFrom", {})
            for kind, table in (("secretKeyRef", secrets), ("configMapKeyRef", maps)):
                if kind in ref:
                    target = table.get(ref[kind]["name"])
                    if target is None:
                        problems.append(f"{cwhere}: {var['name']}: no {kind} {ref[kind]['name']}")
                    elif ref[kind]["key"] not in data_keys(target):
                        problems.append(
                            f"{cwhere}: {var['name']}: {ref[kind]['name']} has no key"
                            f" {ref[kind]['key']}"
                        )
        problems += [f"{cwhere}: {n} is no setting" for n in unknown_settings(names)]
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                problems.append(f"{cwhere}: mount of undeclared volume {mount['name']}")
    return problems


def test_k8s() -> None:
    assert k8s_problems(k8s_objects()) == []


def test_kustomization_lists_every_manifest_but_the_examples() -> None:
    [kustomization] = load_yaml_all(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    examples = {m for m in manifests if ".example." in m}
    assert examples == {"secrets.example.yaml"}
    assert listed == manifests - examples
    [image] = kustomization["images"]
    [used] = {
        c["image"]
        for o in k8s_objects()
        if o["kind"] in ("Job", "Deployment")
        for c in containers(o)
    }
    assert image["name"] == used.split(":")[0] and image["newTag"] == used.split(":")[1]
    compose_images = {s["image"] for n, s in compose_doc()["services"].items() if n in SERVICES}
    assert compose_images == {used}


def test_example_secrets_are_placeholders_that_refuse_to_start() -> None:
    secrets = by_kind(load_yaml_all(K8S / "secrets.example.yaml"), "Secret")
    assert secrets
    for secret in secrets.values():
        assert secret["metadata"]["annotations"]["sealmark.example/placeholder"] == "true"
        assert all("CHANGE-ME" in v for v in secret["stringData"].values())
        assert "data" not in secret  # nothing base64 that could hide a real value
    values = secrets["sealmark-secrets"]["stringData"]
    environ = {
        "SEALMARK_DATABASE_URL": values["database-url"],
        "SEALMARK_REDIS_URL": values["redis-url"],
        "SEALMARK_SECRET_PEPPER": values["secret-pepper"],
        "SEALMARK_KEY_PASSPHRASE": values["key-passphrase"],
    }
    with pytest.raises(InvalidArgument, match="SEALMARK_SECRET_PEPPER"):
        load_settings(environ)
    with pytest.raises(InvalidArgument, match="SEALMARK_KEY_PASSPHRASE"):
        load_settings({**environ, "SEALMARK_SECRET_PEPPER": "x" * 32})


# ------------------------------------------------------------------------- rules that bite


def _compose(change: Callable[[dict[str, Any]], object]) -> Callable[[], list[str]]:
    def run() -> list[str]:
        doc = copy.deepcopy(compose_doc())
        change(doc)
        return compose_problems(doc)

    return run


def _k8s(change: Callable[[list[dict[str, Any]]], object]) -> Callable[[], list[str]]:
    def run() -> list[str]:
        objects = copy.deepcopy(k8s_objects())
        change(objects)
        return k8s_problems(objects)

    return run


def _docker(old: str, new: str) -> Callable[[], list[str]]:
    def run() -> list[str]:
        text = DOCKERFILE.read_text(encoding="utf-8")
        assert old in text, old
        return dockerfile_problems(text.replace(old, new))

    return run


def _deployment(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return by_kind(objects, "Deployment")[f"sealmark-{name}"]


def _container(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return containers(_deployment(objects, name))[0]


def _set_probe_port(objects: list[dict[str, Any]]) -> None:
    command = _container(objects, "verifier")["readinessProbe"]["exec"]["command"]
    command[command.index("--target") + 1] = "127.0.0.1:50099"


def _set_env(objects: list[dict[str, Any]], **values: Any) -> None:
    _container(objects, "issuer")["env"][0].update(values)


MUTATIONS: dict[str, tuple[Callable[[], list[str]], str]] = {
    "compose: a service missing": (
        _compose(lambda d: d["services"].pop("audit")),
        "service audit is missing",
    ),
    "compose: health check on another port": (
        _compose(lambda d: d["services"]["issuer"]["healthcheck"]["test"].__setitem__(5, "x:1")),
        "targets port 1",
    ),
    "compose: health check of another service": (
        _compose(lambda d: d["services"]["audit"]["healthcheck"]["test"].__setitem__(7, "x.Y")),
        "asks about 'x.Y'",
    ),
    "compose: unknown setting": (
        _compose(lambda d: d["services"]["verifier"]["environment"].update(SEALMARK_GPRC_PORT=1)),
        "SEALMARK_GPRC_PORT is no setting",
    ),
    "compose: undeclared secret": (
        _compose(lambda d: d["secrets"].pop("issuer_key")),
        "secret 'issuer_key' is not declared",
    ),
    "compose: TLS file not mounted": (
        _compose(lambda d: d["services"]["aggregator"]["secrets"].pop(1)),
        "SEALMARK_TLS_CLIENT_CA_FILE=/etc/sealmark/tls/ca.crt is not mounted",
    ),
    "compose: no wait for the migration": (
        _compose(lambda d: d["services"]["verifier"].pop("depends_on")),
        "verifier: does not wait for the migrate service",
    ),
    "compose: images differ": (
        _compose(lambda d: d["services"]["audit"].update(image="sealmark:0.0.9")),
        "different images",
    ),
    "compose: an unpinned image": (
        _compose(lambda d: d["services"]["redis"].update(image="redis:latest")),
        "redis: image 'redis:latest'",
    ),
    "compose: outside the specification": (
        _compose(lambda d: d["services"]["issuer"].update(helthcheck={})),
        "schema: services/issuer",
    ),
    "k8s: probe on an undeclared port": (_k8s(_set_probe_port), "targets port 50099"),
    "k8s: native grpc probe on an undeclared port": (
        _k8s(lambda o: _container(o, "audit").update(livenessProbe={"grpc": {"port": 50052}})),
        "audit livenessProbe: port 50052 undeclared",
    ),
    "k8s: no readiness probe": (
        _k8s(lambda o: _container(o, "aggregator").pop("readinessProbe")),
        "aggregator: no readinessProbe",
    ),
    "k8s: secret key that does not exist": (
        _k8s(
            lambda o: _container(o, "issuer")["env"][0]["valueFrom"]["secretKeyRef"].update(
                key="database-uri"
            )
        ),
        "sealmark-secrets has no key database-uri",
    ),
    "k8s: secret that does not exist": (
        _k8s(lambda o: o.remove(by_kind(o, "Secret")["sealmark-tls-audit"])),
        "no Secret sealmark-tls-audit",
    ),
    "k8s: ConfigMap that does not exist": (
        _k8s(lambda o: o.remove(by_kind(o, "ConfigMap")["sealmark-settings"])),
        "no ConfigMap sealmark-settings",
    ),
    "k8s: unknown setting in the ConfigMap": (
        _k8s(
            lambda o: by_kind(o, "ConfigMap")["sealmark-settings"]["data"].update(
                SEALMARK_TLS_CERT="x"
            )
        ),
        "SEALMARK_TLS_CERT is no setting",
    ),
    "k8s: unknown setting in env": (
        _k8s(lambda o: _set_env(o, name="SEALMARK_DB_URL")),
        "SEALMARK_DB_URL is no setting",
    ),
    "k8s: pod as root": (
        _k8s(
            lambda o: _deployment(o, "verifier")["spec"]["template"]["spec"].pop("securityContext")
        ),
        "must run as a non-root user",
    ),
    "k8s: no resource requests": (
        _k8s(lambda o: _container(o, "audit")["resources"].pop("requests")),
        "no cpu request",
    ),
    "k8s: images differ": (
        _k8s(lambda o: _container(o, "audit").update(image="sealmark:0.0.9")),
        "different images",
    ),
    "k8s: no PodDisruptionBudget": (
        _k8s(lambda o: o.remove(by_kind(o, "PodDisruptionBudget")["sealmark-issuer"])),
        "issuer: no PodDisruptionBudget",
    ),
    "k8s: no migration Job": (
        _k8s(lambda o: o.remove(by_kind(o, "Job")["sealmark-migrate-0-1-0"])),
        "no Job runs `sealmark migrate`",
    ),
    "k8s: a service missing": (
        _k8s(lambda o: o.remove(_deployment(o, "aggregator"))),
        "sealmark serve aggregator",
    ),
    "k8s: writable root file system": (
        _k8s(
            lambda o: _container(o, "issuer")["securityContext"].update(
                readOnlyRootFilesystem=False
            )
        ),
        "readOnlyRootFilesystem must be true",
    ),
    "docker: single stage": (
        _docker("COPY --from=build /opt/sealmark /opt/sealmark\n", ""),
        "",  # replaced below: removing the stage is done by text surgery
    ),
    "docker: latest base": (
        _docker("FROM python:3.11.11-slim-bookworm AS runtime", "FROM python:latest AS runtime"),
        "pin the base image's tag",
    ),
    "docker: untagged base": (
        _docker("FROM python:3.11.11-slim-bookworm AS build", "FROM python AS build"),
        "FROM python: pin",
    ),
    "docker: not slim": (
        _docker("FROM python:3.11.11-slim-bookworm AS build", "FROM python:3.11.11 AS build"),
        "want a slim base",
    ),
    "docker: root user": (_docker("USER 10001:10001", "USER root"), "must not run as root"),
    "docker: no user": (_docker("USER 10001:10001\n", ""), "sets no USER"),
    "docker: no health check": (
        _docker("HEALTHCHECK --interval", "# HEALTHCHECK --interval"),
        "no HEALTHCHECK",
    ),
    "docker: apt lists kept": (
        _docker("    && rm -rf /var/lib/apt/lists/*\n", ""),
        "apt lists not cleaned",
    ),
    "docker: ADD of a URL": (
        _docker("WORKDIR /src\n", "WORKDIR /src\nADD https://example.com/x.tgz /src/\n"),
        "ADD of a URL",
    ),
    "docker: COPY from an unknown stage": (
        _docker("COPY --from=build", "COPY --from=builder"),
        "no such earlier stage",
    ),
}


def _single_stage() -> list[str]:
    text = DOCKERFILE.read_text(encoding="utf-8")
    runtime = text.index("FROM python:3.11.11-slim-bookworm AS runtime")
    build = text.index("FROM python:3.11.11-slim-bookworm AS build")
    return dockerfile_problems(text[:build] + text[runtime:].replace("COPY --from=build", "#"))


MUTATIONS["docker: single stage"] = (_single_stage, "not multi-stage")


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_rule_bites(name: str) -> None:
    mutate, expected = MUTATIONS[name]
    problems = mutate()
    assert any(expected in p for p in problems), problems


# -------------------------------------------------------------- dev secrets and the probe


def test_dev_secrets_load_as_settings_and_chain_to_the_ca(tmp_path: Path) -> None:
    module = load_make_dev_secrets()
    out = tmp_path / "secrets"
    module.make(out)
    assert oct(out.stat().st_mode & 0o777) == "0o700"
    assert oct((out / "ca.key").stat().st_mode & 0o777) == "0o600"
    settings = load_settings({"SEALMARK_CONFIG": str(out / "sealmark.toml")})
    assert settings.database_url is not None and "sslmode=verify-full" in settings.database_url
    assert settings.secret_pepper is not None and settings.key_passphrase is not None
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    for name in (*SERVICES, "postgres", "redis"):
        cert = x509.load_pem_x509_certificate((out / f"{name}.crt").read_bytes())
        cert.verify_directly_issued_by(ca)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert name in sans.get_values_for_type(x509.DNSName)
        assert cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=300)
    assert module.make(out) == []  # nothing replaced on a second run


@pytest.fixture(scope="module")
def dev_secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dev") / "secrets"
    load_make_dev_secrets().make(out)
    return out


class Server:
    def __init__(self, credentials: grpc.ServerCredentials | None) -> None:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        address = "127.0.0.1:0"
        self.port = (
            self.server.add_secure_port(address, credentials)
            if credentials
            else self.server.add_insecure_port(address)
        )
        self.server.start()
        for name in ("", *PROTO_NAMES.values()):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture
def plain() -> Iterator[Server]:
    server = Server(None)
    yield server
    server.server.stop(0)


@pytest.fixture
def tls(dev_secrets: Path) -> Iterator[Server]:
    pair = ((dev_secrets / "issuer.key").read_bytes(), (dev_secrets / "issuer.crt").read_bytes())
    server = Server(grpc.ssl_server_credentials([pair]))
    yield server
    server.server.stop(0)


def test_health_plaintext(plain: Server, capsys: pytest.CaptureFixture[str]) -> None:
    target = f"127.0.0.1:{plain.port}"
    assert health_cli.main(["--target", target]) == 0
    assert "SERVING" in capsys.readouterr().out
    assert health_cli.main(["--target", target, "--service", "sealmark.v1.Audit"]) == 0
    assert health_cli.main(["--target", target, "--service", "nope.v1.Nope"]) == 1
    plain.health.set("sealmark.v1.Audit", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert health_cli.main(["--target", target, "--service", "sealmark.v1.Audit"]) == 1
    assert "NOT_SERVING" in capsys.readouterr().out
    plain.health.enter_graceful_shutdown()
    assert health_cli.main(["--target", target]) == 1


def test_health_no_answer(plain: Server, tmp_path: Path) -> None:
    plain.server.stop(0).wait()
    assert health_cli.main(["--target", f"127.0.0.1:{plain.port}", "--timeout", "1"]) == 2
    assert health_cli.main(["--ca", str(tmp_path / "absent.pem")]) == 2
    assert health_cli.main(["--cert", str(tmp_path / "c.pem")]) == 2


def test_health_tls(tls: Server, dev_secrets: Path, tmp_path: Path) -> None:
    target = f"127.0.0.1:{tls.port}"
    ca = str(dev_secrets / "ca.crt")
    assert health_cli.main(["--target", target, "--ca", ca]) == 0  # the SAN has 127.0.0.1
    assert health_cli.main(["--target", target, "--ca", ca, "--server-name", "issuer"]) == 0
    assert health_cli.main(["--target", target, "--ca", ca, "--server-name", "audit"]) == 2
    load_make_dev_secrets().make(tmp_path / "other")
    wrong = str(tmp_path / "other" / "ca.crt")  # another CA: the handshake fails
    assert health_cli.main(["--target", target, "--ca", wrong, "--timeout", "1"]) == 2
    assert health_cli.main(["--target", target, "--timeout", "1"]) == 2  # plaintext to TLS
    client = ["--cert", str(dev_secrets / "sealmark-cli.crt")]
    assert health_cli.main(["--target", target, "--ca", ca, *client]) == 2  # --key missing
    key = ["--key", str(dev_secrets / "sealmark-cli.key")]
    assert health_cli.main(["--target", target, "--ca", ca, *client, *key]) == 0


def _run_probe(command: list[str], port: int, ca: Path, env: dict[str, str] | None = None) -> int:
    """Run a manifest's health command here: this interpreter, the test server's port, the
    dev CA where the manifest mounts its CA."""
    argv = [sys.executable if a == "python" else a for a in command]
    argv = [re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", a) for a in argv]
    argv = [str(ca) if a == "/etc/sealmark/tls/ca.crt" else a for a in argv]
    done = subprocess.run(
        argv, env={**os.environ, **(env or {})}, check=False, timeout=30, cwd=ROOT
    )
    return done.returncode


def test_compose_and_k8s_health_commands_pass_against_a_tls_server(
    tls: Server, dev_secrets: Path
) -> None:
    compose_test = compose_doc()["services"]["issuer"]["healthcheck"]["test"][1:]
    assert _run_probe(compose_test, tls.port, dev_secrets / "ca.crt") == 0
    container = containers(by_kind(k8s_objects(), "Deployment")["sealmark-issuer"])[0]
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = container[kind]["exec"]["command"]
        assert _run_probe(command, tls.port, dev_secrets / "ca.crt") == 0, kind
    tls.health.set("sealmark.v1.Issuer", health_pb2.HealthCheckResponse.NOT_SERVING)
    ready = container["readinessProbe"]["exec"]["command"]
    assert _run_probe(ready, tls.port, dev_secrets / "ca.crt") == 1


def test_the_image_healthcheck_runs(plain: Server) -> None:
    """The Dockerfile's HEALTHCHECK, run here: without a mounted CA it speaks plaintext to
    SEALMARK_GRPC_PORT."""
    rows = dockerfile_rows(DOCKERFILE.read_text(encoding="utf-8"))
    [check] = [r["value"] for r in rows if r["instruction"] == "HEALTHCHECK"]
    command = json.loads(check.split("CMD", 1)[1])
    assert command[:2] == ["/bin/sh", "-c"]
    script = command[2].replace("exec python", f"exec {shlex.quote(sys.executable)}")
    assert "/etc/sealmark/tls/ca.crt" in script and not Path("/etc/sealmark/tls/ca.crt").exists()
    env = {"SEALMARK_GRPC_PORT": str(plain.port)}
    assert _run_probe(["/bin/sh", "-c", script], plain.port, Path("/nonexistent"), env) == 0
    plain.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert _run_probe(["/bin/sh", "-c", script], plain.port, Path("/nonexistent"), env) == 1


def image_env() -> dict[str, str]:
    text = DOCKERFILE.read_text(encoding="utf-8")
    envs: dict[str, str] = DockerfileParser(fileobj=io.BytesIO(text.encode())).envs
    return {k: v for k, v in envs.items() if k.startswith("SEALMARK_")}


def test_compose_environments_are_valid_settings(dev_secrets: Path) -> None:
    """Values too, not only names: each container's environment (the image's, then the
    service's) with the sealmark.toml that make_dev_secrets.py writes builds a Settings."""
    for name, service in compose_doc()["services"].items():
        if name in ("postgres", "redis"):
            continue
        environ = {**image_env(), **{k: str(v) for k, v in service["environment"].items()}}
        environ["SEALMARK_CONFIG"] = str(dev_secrets / "sealmark.toml")
        settings = load_settings(environ)
        assert settings.redis_url is not None and settings.redis_url.startswith("rediss://")
        assert settings.database_url is not None and not settings.embedded
        assert settings.grpc_host == image_env()["SEALMARK_GRPC_HOST"] != "127.0.0.1"
    environ["SEALMARK_REDIS_URL"] = "tcp://redis:6379"  # the check bites on a bad value
    with pytest.raises(InvalidArgument, match="SEALMARK_REDIS_URL"):
        load_settings(environ)


def test_k8s_environments_are_valid_settings() -> None:
    """Each container's environment as the kubelet would build it, with the example Secrets'
    placeholders replaced by values of the right shape."""
    objects = k8s_objects()
    maps, secrets = by_kind(objects, "ConfigMap"), by_kind(objects, "Secret")
    real = {"secret-pepper": "p" * 32, "key-passphrase": "k" * 32, "mac-secret": "m" * 32}
    checked = 0
    for obj in objects:
        if obj["kind"] not in ("Deployment", "Job"):
            continue
        for container in containers(obj):
            environ = dict(image_env())
            for source in container.get("envFrom", []):
                environ.update(maps[source["configMapRef"]["name"]]["data"])
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref is None:
                    environ[var["name"]] = str(var["value"])
                else:
                    value = secrets[ref["name"]]["stringData"][ref["key"]]
                    environ[var["name"]] = real.get(ref["key"], value)
            settings = load_settings(environ)
            assert settings.database_url is not None and settings.redis_url is not None
            checked += 1
    assert checked == len(SERVICES) + 1
