"""What a stranger can reach: through HAProxy routing exactly the shipped Ingress's paths to the prod
container's public port, prediction works and /metrics and /owner do not; Prometheus, inside the pod, still
scrapes the metrics port."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from snakes_web.serving.metrics_port import DEFAULT_PORT
from tests.conftest import free_port
from tests.container.conftest import PREFIX, predict_photo, run, tool, wait_healthy
from tests.container.kube import by_kind

pytestmark = pytest.mark.container
HAPROXY = "/usr/sbin/haproxy"
OWNER_TOKEN = "owner-token-for-the-public-surface-test"


def ingress_acls() -> list[str]:
    """Translate the shipped Ingress's paths into HAProxy ACLs (Exact → path, Prefix → path_beg)."""
    paths = by_kind()["Ingress"]["spec"]["rules"][0]["http"]["paths"]
    kinds = {"Exact": "path", "Prefix": "path_beg"}
    return [f"    acl public {kinds[p['pathType']]} {p['path']}" for p in paths]


@pytest.fixture(scope="module")
def edge(prod_image: str) -> Iterator[tuple[str, str, str]]:
    """The prod container (owner page on) published on loopback, and HAProxy in front as the Ingress."""
    if not Path(HAPROXY).exists():
        pytest.fail(f"{HAPROXY} not found: apt-get install haproxy (.ci/run does)")
    port, name = free_port(), f"{PREFIX}-surface-{os.getpid()}"
    run(tool("podman"), "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000",
        "-e", f"SNAKES_OWNER_TOKEN={OWNER_TOKEN}", "-e", "SNAKES_FEEDBACK=false", prod_image)
    folder = Path(tempfile.mkdtemp(prefix="snakes-edge-"))
    balancer = None
    try:
        wait_healthy(f"http://127.0.0.1:{port}", name)
        front = free_port()
        config = folder / "haproxy.cfg"
        acls = "\n".join(ingress_acls())
        config.write_text(f"""
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 60s
frontend ingress
    bind 127.0.0.1:{front}
{acls}
    http-request return status 404 content-type text/plain string "no route" unless public
    default_backend app
backend app
    server app 127.0.0.1:{port}
""")
        run(HAPROXY, "-c", "-f", str(config))
        balancer = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{front}"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/", timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    pytest.fail("HAProxy did not start")
                time.sleep(0.1)
        yield base, f"http://127.0.0.1:{port}", name
    finally:
        if balancer is not None:
            balancer.terminate()
            balancer.wait(timeout=10)
        run(tool("podman"), "rm", "-f", "-t", "0", name, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def test_through_the_ingress_prediction_works_and_operations_endpoints_do_not(edge: tuple[str, str, str]) -> None:
    base, _, _ = edge
    assert predict_photo(base)["predictions"][0]["label"] == "not a snake"
    assert requests.get(f"{base}/", timeout=10).status_code == 200
    assert requests.get(f"{base}/api/v1/model", timeout=10).status_code == 200
    for path in ("/metrics", "/owner", "/readyz"):
        response = requests.get(f"{base}{path}", auth=("owner", OWNER_TOKEN), timeout=10)
        assert response.status_code == 404 and "snakes_http_requests" not in response.text, path


def test_the_public_port_itself_has_no_metrics_and_the_pod_scrapes_its_own_port(edge: tuple[str, str, str]) -> None:
    _, public, name = edge
    predict_photo(public)
    assert requests.get(f"{public}/metrics", timeout=10).status_code == 404  # not on the app's port at all
    scrape = (f"import http.client; c = http.client.HTTPConnection('127.0.0.1', {DEFAULT_PORT}, timeout=10); "
              "c.request('GET', '/metrics'); r = c.getresponse(); print(r.status); print(r.read().decode())")
    out = run(tool("podman"), "exec", name, "python", "-c", scrape).stdout
    counted = 'snakes_http_requests_total{endpoint="/api/v1/predict",method="POST",status="200"}'
    assert out.startswith("200") and counted in out
