"""deploy/kubernetes: valid for a named Kubernetes release, consistent with itself, the image and the
server's settings, and the Deployment and Service run for real with `podman kube play`.

There is no cluster here: the schema (kubernetes-validate, strict) sees what the API server's schema
would refuse; the checks after it see what no schema can (selectors that select nothing, a probe on
the wrong port, limits in which sizing.py would start a different number of workers); podman runs
the pod with the manifest's security context, limits and volume, and this test plays the kubelet's
part for the probes (podman runs no probes here: it has no systemd for timers).
"""
from __future__ import annotations

import contextlib
import copy
import ipaddress
import json
import math
import os
import re
import runpy
import threading
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import requests

from snakes_web.config import load_settings
from snakes_web.serving.metrics_port import DEFAULT_PORT
from snakes_web.serving.sizing import MASTER_MEMORY_MB, WORKER_MEMORY_MB, plan
from snakes_web.serving.worker import SEND_TIMEOUT
from tests.conftest import free_port
from tests.container.conftest import PREFIX, ROOT, predict_photo, record, run, tool
from tests.container.kube import (
    KUBERNETES_VERSION,
    MANIFESTS,
    by_kind,
    container,
    cpu_cores,
    env_of,
    kustomization,
    mebibytes,
    playable,
    port_number,
    resources,
)

pytestmark = pytest.mark.container

LABELS = "app.kubernetes.io/name", "app.kubernetes.io/component"


# --- the schema -------------------------------------------------------------------------------

@pytest.mark.parametrize("resource", resources(), ids=lambda resource: resource["kind"])
def test_every_manifest_passes_the_kubernetes_schema_strictly(resource: dict[str, Any]) -> None:
    assert kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True) == "1.37"


@pytest.mark.parametrize("damage", ["an unknown field", "a wrong type", "a missing required field"])
def test_the_schema_check_refuses_a_damaged_deployment(damage: str) -> None:
    """The validator really is strict: each kind of mistake in the Deployment fails it."""
    deployment = copy.deepcopy(by_kind()["Deployment"])
    spec = container(deployment)
    if damage == "an unknown field":
        spec["readinessProbe"]["httpGett"] = spec["readinessProbe"].pop("httpGet")
    elif damage == "a wrong type":
        deployment["spec"]["replicas"] = "two"
    else:
        del spec["name"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_lists_every_manifest_and_names_the_deployments_image() -> None:
    listed = kustomization()["resources"]
    on_disk = sorted(path.name for path in MANIFESTS.glob("*.yaml") if path.name != "kustomization.yaml")
    assert sorted(listed) == on_disk and len(set(listed)) == len(listed)
    [image] = kustomization()["images"]
    assert container(by_kind()["Deployment"])["image"].split(":")[0] == image["name"]


# --- what a schema cannot see ---------------------------------------------------------------------

def test_every_selector_selects_the_deployments_pods() -> None:
    kinds = by_kind()
    pod_labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selectors = {
        "Deployment": kinds["Deployment"]["spec"]["selector"]["matchLabels"],
        "Service": kinds["Service"]["spec"]["selector"],
        "PodDisruptionBudget": kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        "NetworkPolicy": kinds["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"],
        "topologySpreadConstraints": kinds["Deployment"]["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
        ["labelSelector"]["matchLabels"],
    }
    for owner, selector in selectors.items():
        assert selector and selector.items() <= pod_labels.items(), owner
        assert set(LABELS) <= set(selector), owner  # not a selector so wide it takes other apps' pods too


def test_ports_agree_with_the_image_and_the_server(prod_image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = by_kind()
    deployment, service, ingress = kinds["Deployment"], kinds["Service"], kinds["Ingress"]
    spec = container(deployment)
    config = json.loads(run(tool("podman"), "image", "inspect", prod_image, "--format", "{{json .Config}}").stdout)
    exposed = {int(port.split("/")[0]) for port in config["ExposedPorts"]}
    image_env = dict(entry.split("=", 1) for entry in config["Env"])
    port, metrics_port = spec["ports"]
    assert (port["name"], metrics_port["name"]) == ("http", "metrics")
    assert {port["containerPort"], metrics_port["containerPort"]} == exposed and port["protocol"] == "TCP"
    assert metrics_port["containerPort"] == int(env_of(spec).get("SNAKES_METRICS_PORT", str(DEFAULT_PORT)))
    assert env_of(spec).get("PORT", image_env["PORT"]) == str(port["containerPort"])
    # gunicorn.conf.py binds every interface on $PORT (the kubelet and the Service reach the pod's IP).
    monkeypatch.setenv("PORT", env_of(spec).get("PORT", image_env["PORT"]))
    monkeypatch.setenv("SNAKES_TORCH_THREADS", "0")
    monkeypatch.delenv("SNAKES_BIND", raising=False)
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["bind"] == [f"0.0.0.0:{port['containerPort']}"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert port_number(spec, spec[probe]["httpGet"]["port"]) == port["containerPort"], probe
    assert [spec[probe]["httpGet"]["path"] for probe in ("startupProbe", "readinessProbe", "livenessProbe")] == \
        ["/readyz", "/readyz", "/healthz"]
    [service_port] = service["spec"]["ports"]
    assert port_number(spec, service_port["targetPort"]) == port["containerPort"]
    for path in ingress["spec"]["rules"][0]["http"]["paths"]:  # every route to the app's public port
        backend = path["backend"]["service"]
        assert backend["name"] == service["metadata"]["name"] and backend["port"]["name"] == service_port["name"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == metrics_port["containerPort"]  # scraped on its own port
    http_in, metrics_in = kinds["NetworkPolicy"]["spec"]["ingress"]
    assert port_number(spec, http_in["ports"][0]["port"]) == port["containerPort"]
    assert port_number(spec, metrics_in["ports"][0]["port"]) == metrics_port["containerPort"]
    assert metrics_in["from"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}]  # Prometheus's namespace only


def test_the_ingress_routes_only_the_public_routes_over_tls() -> None:
    ingress = by_kind()["Ingress"]
    routes = {(path["path"], path["pathType"]) for path in ingress["spec"]["rules"][0]["http"]["paths"]}
    assert routes == {("/", "Exact"), ("/static/", "Prefix"), ("/api/v1/", "Prefix"), ("/feedback", "Exact")}
    [tls] = ingress["spec"]["tls"]
    assert tls["hosts"] == [ingress["spec"]["rules"][0]["host"]] and tls["secretName"]
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"]


def test_the_pod_runs_as_the_images_numeric_user_hardened(prod_image: str) -> None:
    pod = by_kind()["Deployment"]["spec"]["template"]["spec"]
    user = run(tool("podman"), "image", "inspect", prod_image, "--format", "{{.Config.User}}").stdout.strip()
    uid, gid = (int(part) for part in user.split(":"))
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid) and uid != 0
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    spec = container(by_kind()["Deployment"])
    context = spec["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    [mount] = spec["volumeMounts"]
    [volume] = pod["volumes"]
    assert mount == {"name": volume["name"], "mountPath": "/tmp"} and "emptyDir" in volume


def test_replicas_store_feedback_in_one_shared_database_or_not_at_all() -> None:
    # Several replicas each with its own SQLite file would lose feedback with every pod and refuse each
    # other's tokens; the read-only root has no /data either. Off, or PostgreSQL for all of them.
    env = {item["name"]: item for item in container(by_kind()["Deployment"]).get("env", [])}
    feedback_on = env.get("SNAKES_FEEDBACK", {}).get("value", "true").lower() not in ("false", "0", "no", "off")
    assert not feedback_on or "SNAKES_DATABASE_URL" in env
    assert "/data" not in [mount["mountPath"] for mount in container(by_kind()["Deployment"])["volumeMounts"]]


def test_the_resources_are_what_sizing_starts_one_worker_per_core_in() -> None:
    spec = container(by_kind()["Deployment"])
    requests_, limits = spec["resources"]["requests"], spec["resources"]["limits"]
    assert requests_ == limits  # Guaranteed QoS; the HPA's percentages are of exactly what the pod has
    cores, memory = cpu_cores(limits["cpu"]), mebibytes(limits["memory"])
    assert cores == int(cores)  # sizing rounds a fractional quota up: a whole number says what it gets
    chosen = plan("onnx", math.ceil(cores), memory)
    assert (chosen.workers, chosen.threads, chosen.reason) == (int(cores), 1, "one per core")
    assert chosen.workers * WORKER_MEMORY_MB["onnx"] + MASTER_MEMORY_MB <= memory
    record("kubernetes_pod_plan", chosen.describe())


def test_the_grace_period_covers_the_prestop_pause_the_drain_and_the_graceful_timeout() -> None:
    deployment = by_kind()["Deployment"]
    spec = container(deployment)
    command = spec["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    settings = load_settings(environ={key: value for key, value in env_of(spec).items() if key.startswith("SNAKES_")})
    stop = int(command[1]) + settings["DRAIN_SECONDS"] + settings["GRACEFUL_TIMEOUT"]
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert settings["DRAIN_SECONDS"] > 0 and stop < grace, (stop, grace)
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    assert deployment["spec"]["replicas"] == 2


def test_the_hpa_and_the_pdb_point_at_the_deployment_and_leave_one_pod_serving() -> None:
    kinds = by_kind()
    deployment, hpa, pdb = kinds["Deployment"], kinds["HorizontalPodAutoscaler"], kinds["PodDisruptionBudget"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": deployment["apiVersion"], "kind": "Deployment",
                                            "name": deployment["metadata"]["name"]}
    assert hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"] < hpa["spec"]["maxReplicas"]
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
    assert 0 < metric["resource"]["target"]["averageUtilization"] < 100
    assert "cpu" in container(deployment)["resources"]["requests"]  # Utilization is a share of the request
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]  # an eviction always leaves a pod


#: What egress to 80/443 must not reach (IPv4, and the IPv6 forms that lead back to them or alike).
PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10",
           "fc00::/7", "fe80::/10"]


def test_the_network_policy_allows_dns_and_web_ports_to_public_addresses_only() -> None:
    policy = by_kind()["NetworkPolicy"]["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    dns, web = policy["egress"]
    assert {(port["protocol"], port["port"]) for port in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    assert all("ipBlock" not in peer for peer in dns["to"])  # DNS goes to the cluster's DNS pods only
    assert {(port["protocol"], port["port"]) for port in web["ports"]} == {("TCP", 80), ("TCP", 443)}
    blocks = [peer["ipBlock"] for peer in web["to"]]
    allowed = [ipaddress.ip_network(block["cidr"]) for block in blocks]
    refused = [ipaddress.ip_network(cidr) for block in blocks for cidr in block["except"]]
    for block in blocks:  # what the API server checks: each exception lies inside its block
        assert all(ipaddress.ip_network(cidr).subnet_of(ipaddress.ip_network(block["cidr"]))  # type: ignore[arg-type]
                   for cidr in block["except"])

    def reachable(address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in net for net in allowed) and not any(ip in net for net in refused)

    for network in PRIVATE:
        first = ipaddress.ip_network(network)
        assert not reachable(str(first.network_address)) and not reachable(str(first.broadcast_address)), network
    for address in ("169.254.169.254", "fd00:ec2::254", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
                    "64:ff9b::10.1.2.3", "64:ff9b::169.254.169.254", "64:ff9b::192.168.1.1", "100.100.100.200"):
        assert not reachable(address), address  # metadata, and private addresses in IPv6 clothing
    for address in ("93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::93.184.215.14"):
        assert reachable(address), address  # the public internet stays open, on IPv6 and NAT64 too


def test_the_ingress_limits_match_the_servers_settings() -> None:
    annotations = by_kind()["Ingress"]["metadata"]["annotations"]
    defaults = load_settings(environ={})
    prefix = "nginx.ingress.kubernetes.io/"
    body = annotations[prefix + "proxy-body-size"]
    assert re.fullmatch(r"\d+m", body) and int(body[:-1]) * 2**20 == defaults["MAX_UPLOAD_BYTES"]  # nginx: m = MiB
    longest_answer = 3 * defaults["FETCH_TIMEOUT"] + defaults["QUEUE_TIMEOUT"]  # a URL's whole fetch + the queue
    assert int(annotations[prefix + "proxy-read-timeout"]) >= longest_answer + 10
    assert int(annotations[prefix + "proxy-send-timeout"]) == SEND_TIMEOUT


# --- podman kube play ------------------------------------------------------------------------------

def kubelet_probe(port: int, probe: dict[str, Any]) -> bool:
    """Run one HTTP probe as the kubelet does: a GET within timeoutSeconds; 200-399 passes."""
    try:
        answer = requests.get(f"http://127.0.0.1:{port}{probe['httpGet']['path']}",
                              timeout=probe.get("timeoutSeconds", 1), allow_redirects=False)
    except requests.RequestException:
        return False
    return 200 <= answer.status_code < 400


def wait_for_probe(port: int, probe: dict[str, Any]) -> float:
    """Probe every periodSeconds until it passes, at most failureThreshold times (the kubelet's budget)."""
    started = time.monotonic()
    for _ in range(probe.get("failureThreshold", 3)):
        if kubelet_probe(port, probe):
            return time.monotonic() - started
        time.sleep(probe.get("periodSeconds", 10))
    pytest.fail(f"the probe {probe} never passed: the kubelet would have restarted the container")


@pytest.fixture
def played(prod_image: str, tmp_path: Path) -> Any:
    """The Deployment and Service played by podman; `podman kube down` and a check it left nothing."""
    name = f"{PREFIX}-kube-{os.getpid()}"
    volume = f"{name}-tmp"
    port = free_port()
    kinds = by_kind()
    manifest = tmp_path / "play.yaml"
    manifest.write_text(playable(kinds["Deployment"], kinds["Service"], name, prod_image, port, volume))
    run(tool("podman"), "kube", "play", str(manifest), timeout=120)
    state = {"name": name, "pod": f"{name}-pod-0", "container": f"{name}-pod-0-snakes-web", "port": port,
             "manifest": manifest, "volume": volume, "down": False}
    try:
        yield state
    finally:
        if not state["down"]:
            run(tool("podman"), "kube", "down", str(manifest), check=False, timeout=120)
        run(tool("podman"), "pod", "rm", "-f", state["pod"], check=False)
        run(tool("podman"), "volume", "rm", "-f", volume, check=False)


def test_podman_kube_play_runs_the_pod_ready_non_root_read_only_and_kube_down_cleans_up(played: Any) -> None:
    spec = container(by_kind()["Deployment"])
    port, name = played["port"], played["container"]
    record("kube_play_startup_probe_seconds", round(wait_for_probe(port, spec["startupProbe"]), 2))
    assert kubelet_probe(port, spec["readinessProbe"]) and kubelet_probe(port, spec["livenessProbe"])
    answer = predict_photo(f"http://127.0.0.1:{port}")
    assert answer["predictions"][0]["label"] == "not a snake" and answer["model"]["backend"] == "onnx"

    # As the manifest says: its user, a read-only root with a writable /tmp, no capabilities.
    assert run(tool("podman"), "exec", name, "id", "-u").stdout.strip() == str(spec["securityContext"].get(
        "runAsUser", by_kind()["Deployment"]["spec"]["template"]["spec"]["securityContext"]["runAsUser"]))
    refused = run(tool("podman"), "exec", name, "touch", "/app/written", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    run(tool("podman"), "exec", name, "touch", "/tmp/written")
    inspected = json.loads(run(tool("podman"), "inspect", name).stdout)[0]
    assert inspected["HostConfig"]["ReadonlyRootfs"] is True
    assert inspected["EffectiveCaps"] in (None, [])
    assert "no-new-privileges" in inspected["HostConfig"]["SecurityOpt"]
    assert inspected["HostConfig"]["Memory"] == mebibytes(spec["resources"]["limits"]["memory"]) * 2**20
    # Inside that cgroup, sizing.py chose what the manifest's arithmetic says.
    limits = spec["resources"]["limits"]
    expected = plan("onnx", math.ceil(cpu_cores(limits["cpu"])), mebibytes(limits["memory"])).describe()
    logs = run(tool("podman"), "logs", name)
    assert f"snakes-web: onnx backend, {expected}" in logs.stdout + logs.stderr, (logs.stdout + logs.stderr)[-2000:]

    # The kubelet's stop: SIGTERM to the container, SIGKILL after terminationGracePeriodSeconds, the pod's
    # network kept meanwhile. (`podman kube down` tears the pod down at once, so the test sends it.)
    # /readyz turns 503 while the server still answers; then it exits cleanly, well before the SIGKILL.
    grace = by_kind()["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    statuses: list[int] = []
    stop = threading.Thread(target=run, args=(tool("podman"), "stop", "-t", str(grace), name), kwargs={"timeout": 120})
    stop.start()
    deadline = time.monotonic() + 30
    while stop.is_alive() and time.monotonic() < deadline and 503 not in statuses:
        with contextlib.suppress(requests.RequestException):
            statuses.append(requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code)
        time.sleep(0.05)
    assert 503 in statuses, statuses  # the readiness probe sees the drain ...
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200  # ... liveness does not
    stop.join(timeout=120)
    assert run(tool("podman"), "inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0"
    logs = run(tool("podman"), "logs", name)
    assert "snakes-web: stopping: /readyz answers 503" in logs.stdout + logs.stderr

    run(tool("podman"), "kube", "down", str(played["manifest"]), timeout=120)
    played["down"] = True
    assert run(tool("podman"), "pod", "exists", played["pod"], check=False).returncode != 0
    left = run(tool("podman"), "ps", "-a", "--filter", f"name={played['name']}", "--format", "{{.Names}}").stdout
    assert left.strip() == ""
