"""What the Kubernetes manifest tests read: `kustomize build` of deploy/kubernetes/, the
Kubernetes JSON schemas (kubernetes-validate ships them), and the vendored CRDs' schemas."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from tests.fixtures.stack import REPO

KUBERNETES_DIR = REPO / "deploy" / "kubernetes"
CRDS_DIR = KUBERNETES_DIR / "crds"
KUSTOMIZATIONS = (KUBERNETES_DIR / "base", KUBERNETES_DIR / "overlays" / "example-site")
# The oldest Kubernetes the operators pinned in README.md still support, and the newest
# kubernetes-validate knows: every resource must be valid on both.
KUBERNETES_VERSIONS = ("1.32", "1.37")
KUSTOMIZE_VERSION = "v5.8.2"  # deploy/local/kustomize.sh
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def kustomize_binary() -> Path:
    """The kustomize deploy/local/kustomize.sh built (the test command runs it first)."""
    configured = os.environ.get("TELEMETRY_TEST_KUSTOMIZE")
    if configured:
        return Path(configured)
    cache_dir = Path(os.environ.get("TELEMETRY_CACHE_DIR", Path.home() / ".cache" / "health-upload-telemetry"))
    return cache_dir / f"kustomize-{KUSTOMIZE_VERSION}" / "kustomize"


@cache
def build(kustomization: Path) -> tuple[dict[str, Any], ...]:
    """`kustomize build` of one kustomization, as the list of resources it renders."""
    binary = kustomize_binary()
    if not binary.exists():
        raise AssertionError(f"{binary} is missing: run deploy/local/kustomize.sh (deploy/local/test does)")
    done = subprocess.run(
        [str(binary), "build", str(kustomization)], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"kustomize build {kustomization} failed:\n{done.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def by_kind(resources: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    """The resources of one kind."""
    return [r for r in resources if r["kind"] == kind]


def one(resources: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    """The resource of `kind` named `name`, or generated from that name (kustomize appends `-<hash>`)."""
    found = [
        r
        for r in by_kind(resources, kind)
        if r["metadata"]["name"] == name or re.fullmatch(re.escape(name) + r"-[a-z0-9]{10}", r["metadata"]["name"])
    ]
    assert len(found) == 1, (
        f"expected one {kind} {name}, found {[r['metadata']['name'] for r in by_kind(resources, kind)]}"
    )
    return found[0]


# --- built-in kinds ------------------------------------------------------------------------


def builtin_errors(resource: Mapping[str, Any], version: str) -> list[str]:
    """Schema errors of a built-in resource (strict: unknown fields are errors, as kubectl's
    default server-side field validation makes them)."""
    try:
        kubernetes_validate.validate(dict(resource), version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(map(str, exc.path))}: {exc.message}"]
    return []


def is_builtin(resource: Mapping[str, Any], version: str) -> bool:
    """kubernetes-validate has a schema for the resource's apiVersion and kind."""
    try:
        kubernetes_validate.validate(dict(resource), version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return False
    except kubernetes_validate.ValidationError:
        return True
    return True


@cache
def _kubernetes_defs(version: str) -> dict[str, Any]:
    """kubernetes-validate's shared definitions (`$defs`, referenced as `#/$defs/...`)."""
    from kubernetes_validate.utils import schema_contents

    defs: dict[str, Any] = schema_contents(
        f"kubernetes-json-schema/v{version}.0-local-strict/_definitions.json", version
    )["$defs"]
    return defs


# --- custom resources ------------------------------------------------------------------------


@dataclass(frozen=True)
class VendoredCrd:
    """One CRD file of deploy/kubernetes/crds/ and where it came from."""

    path: Path
    sha256: str
    source: str
    version: str


def vendored_crds() -> list[VendoredCrd]:
    """deploy/kubernetes/crds/sources.yaml."""
    listed = yaml.safe_load((CRDS_DIR / "sources.yaml").read_text(encoding="utf-8"))["crds"]
    return [VendoredCrd(CRDS_DIR / e["file"], e["sha256"], e["source"], e["version"]) for e in listed]


def strict(schema: Any) -> Any:
    """The schema with unknown fields refused, as the API server's strict field validation does:
    every object that lists its properties and does not preserve unknown fields gets
    `additionalProperties: false`. CEL rules (x-kubernetes-validations) are not evaluated."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields", False)
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the strict openAPIV3Schema of every served version of every vendored CRD."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for crd in vendored_crds():
        for doc in yaml.safe_load_all(crd.path.read_text(encoding="utf-8")):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for served in doc["spec"]["versions"]:
                if served.get("served"):
                    schema = strict(served["schema"]["openAPIV3Schema"])
                    # metadata is `type: object` in CRDs; check it as the ObjectMeta it is.
                    schema.setdefault("properties", {})["metadata"] = {"$ref": f"#/$defs/{_OBJECT_META}"}
                    schemas[(f"{group}/{served['name']}", kind)] = schema
    return schemas


def custom_errors(resource: Mapping[str, Any], version: str = KUBERNETES_VERSIONS[-1]) -> list[str]:
    """Schema errors of a custom resource against its vendored CRD; a kind with no CRD is an error."""
    schema = crd_schemas().get((resource["apiVersion"], resource["kind"]))
    if schema is None:
        return [f"no vendored CRD for {resource['apiVersion']} {resource['kind']} (deploy/kubernetes/crds/)"]
    validator = jsonschema.Draft202012Validator({**schema, "$defs": _kubernetes_defs(version)})
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in sorted(validator.iter_errors(dict(resource)), key=lambda e: list(map(str, e.absolute_path)))
    ]


def sha256(path: Path) -> str:
    """Hex digest of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def containers(resource: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The containers of a workload's pod template."""
    yield from resource["spec"]["template"]["spec"]["containers"]


def env_file(path: Path) -> dict[str, str]:
    """A kustomize `envs:` file: KEY=VALUE lines, # comments."""
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs


def matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A label selector with matchLabels only (the only form these manifests use)."""
    assert set(selector) <= {"matchLabels"}, f"selector form not handled here: {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
