"""Reading deploy/kubernetes: its resources by kind, and Kubernetes quantities and port names resolved."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.container.conftest import ROOT

MANIFESTS = ROOT / "deploy" / "kubernetes"
#: The Kubernetes release whose API schema the manifests must pass, strictly (kubernetes-validate ships it).
KUBERNETES_VERSION = "1.37.0"
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def kustomization() -> dict[str, Any]:
    """Return kustomization.yaml."""
    return yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())  # type: ignore[no-any-return]


def resources() -> list[dict[str, Any]]:
    """Return every resource the kustomization lists, in its order."""
    found: list[dict[str, Any]] = []
    for name in kustomization()["resources"]:
        found += [doc for doc in yaml.safe_load_all((MANIFESTS / name).read_text()) if doc]
    return found


def by_kind() -> dict[str, dict[str, Any]]:
    """Return the resources by kind (there is one of each)."""
    found = resources()
    kinds = {resource["kind"]: resource for resource in found}
    assert len(kinds) == len(found), "one resource of each kind expected"
    return kinds


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    """Return the Deployment's one container."""
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only  # type: ignore[no-any-return]


def port_number(container_spec: dict[str, Any], port: int | str) -> int:
    """Resolve a probe's or Service's ``port`` (a number or a container port's name) to a number."""
    if isinstance(port, int):
        return port
    named = {entry["name"]: entry["containerPort"] for entry in container_spec["ports"]}
    assert port in named, f"no container port named {port!r}"
    return int(named[port])


def cpu_cores(quantity: str | int) -> float:
    """Return a CPU quantity ("2", "500m") in cores."""
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def mebibytes(quantity: str | int) -> int:
    """Return a memory quantity ("768Mi", "1Gi", "800M", bytes) in MiB, as sizing.py counts (bytes // 2**20)."""
    match = re.fullmatch(r"(\d+)([KMGT]i?|k)?", str(quantity))
    assert match, f"cannot read the quantity {quantity!r}"
    number, unit = int(match.group(1)), match.group(2) or ""
    factor = _BINARY.get(unit) or _DECIMAL.get(unit) or 1
    return number * factor // 2**20


def env_of(container_spec: dict[str, Any]) -> dict[str, str]:
    """Return the container's plain environment variables."""
    return {entry["name"]: entry["value"] for entry in container_spec.get("env", []) if "value" in entry}


def playable(deployment: dict[str, Any], service: dict[str, Any], name: str, image: str,
             host_port: int, volume: str) -> str:
    """Return the Deployment and Service as `podman kube play` runs them here, as YAML.

    Changed, and only this: the names (so the test's pod can be found and removed), the image (the one
    the suite built), one replica published on a loopback host port (podman plays each replica as a
    pod of its own, and two cannot publish one port), and the emptyDir's name (podman makes a named
    volume of it).
    """
    import copy

    deployment, service = copy.deepcopy(deployment), copy.deepcopy(service)
    deployment["metadata"]["name"] = service["metadata"]["name"] = name
    deployment["spec"]["replicas"] = 1
    pod = deployment["spec"]["template"]["spec"]
    spec = container(deployment)
    spec["image"] = image
    spec["ports"][0].update(hostPort=host_port, hostIP="127.0.0.1")
    [tmp] = pod["volumes"]
    spec["volumeMounts"][0]["name"] = tmp["name"] = volume
    return yaml.safe_dump_all([deployment, service], sort_keys=False)


def repo_path(path: Path) -> str:
    """Return ``path`` relative to the repository, for messages."""
    return str(path.relative_to(ROOT))
