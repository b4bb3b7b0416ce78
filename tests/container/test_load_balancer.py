"""Several replicas behind a real load balancer: HAProxy (Debian's) in front of three prod containers.

Under a steady load of real photo uploads through HAProxy: every replica replaced in turn (SIGTERM,
then a new container) loses no request — /readyz turns 503, HAProxy's health check takes the replica
out while it still answers, and only then does it stop listening; a replica killed outright (SIGKILL)
loses only the requests it had in flight, and HAProxy's check takes it out. Each replica is a podman
pod (its own network namespace, as a Kubernetes pod has) with one container: 1 CPU, 512 MB, so one
worker. The counts and the throughput per replica go to test-artifacts/load-balancer.json.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port
from tests.container.conftest import DATA, PREFIX, ROOT, run, tool

pytestmark = pytest.mark.container

HAPROXY = "/usr/sbin/haproxy"
REPLICAS = 3
CLIENTS = 4
#: The replicas' drain: longer than HAProxy needs to see two failed checks 250 ms apart.
DRAIN_SECONDS = 2
CHECK = "inter 250ms downinter 250ms fall 2 rise 2"
STEADY_SECONDS = 8.0
ARTIFACT = ROOT / "test-artifacts" / "load-balancer.json"


class Replica:
    """One replica: a podman pod publishing a loopback port, and the prod container in it (replaceable)."""

    def __init__(self, index: int, image: str) -> None:
        self.index, self.image, self.port = index, image, free_port()
        self.pod = f"{PREFIX}-replica{index}-{os.getpid()}"
        self.generation = 0
        self.container = ""
        run(tool("podman"), "pod", "create", "--name", self.pod, "-p", f"127.0.0.1:{self.port}:8000")

    @property
    def server(self) -> str:
        """Return this replica's name in HAProxy."""
        return f"r{self.index}"

    def start(self) -> None:
        """Start a new prod container in the pod (read-only, 1 CPU, 512 MB: one worker)."""
        self.generation += 1
        self.container = f"{self.pod}-gen{self.generation}"
        run(tool("podman"), "run", "-d", "--pod", self.pod, "--name", self.container, "--no-healthcheck",
            "--read-only", "--tmpfs", "/tmp", "--cpus", "1", "--memory", "512m",
            "-e", f"SNAKES_DRAIN_SECONDS={DRAIN_SECONDS}", self.image)

    def stop(self) -> int:
        """Stop the container as Kubernetes does (SIGTERM, then SIGKILL 30 s later); return its exit code."""
        run(tool("podman"), "stop", "-t", "30", self.container, timeout=60)
        code = run(tool("podman"), "inspect", "--format", "{{.State.ExitCode}}", self.container).stdout.strip()
        run(tool("podman"), "rm", self.container)
        return int(code)

    def kill(self) -> None:
        """SIGKILL the container's gunicorn master (PID 1): the container and its workers die at once."""
        run(tool("podman"), "kill", "--signal", "KILL", self.container)

    def remove(self) -> None:
        """Remove the pod and every container in it."""
        run(tool("podman"), "pod", "rm", "-f", "-t", "0", self.pod, check=False, timeout=120)


class HAProxy:
    """HAProxy on a loopback port in front of the replicas, health-checking /readyz, with a stats socket."""

    def __init__(self, replicas: list[Replica], folder: Path) -> None:
        self.port = free_port()
        self.socket = folder / "stats.sock"
        self.log, self.errors = folder / "haproxy.log", folder / "haproxy.err"
        servers = "\n".join(f"    server {replica.server} 127.0.0.1:{replica.port} check" for replica in replicas)
        config = folder / "haproxy.cfg"
        config.write_text(f"""
global
    log stdout format raw local0 info
    stats socket {self.socket} mode 600 level admin
defaults
    mode http
    log global
    log-format "rid=%[capture.req.hdr(0)] srv=%s status=%ST accepted=%Ts.%ms state=%tsc retries=%rc"
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 1s
    retries 3
    option redispatch 1
frontend web
    bind 127.0.0.1:{self.port}
    http-request capture req.hdr(X-Request-ID) len 40
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server {CHECK}
{servers}
""")
        run(HAPROXY, "-c", "-f", str(config))
        with self.log.open("wb") as out, self.errors.open("wb") as err:
            self.process = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=out, stderr=err)
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"HAProxy did not start:\n{self.text()[-3000:]}")
            time.sleep(0.05)

    def servers(self) -> dict[str, dict[str, str]]:
        """Return HAProxy's statistics for each replica (status, stot, hrsp_2xx, check_status …)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.socket))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        lines = data.decode().lstrip("# ").splitlines()
        return {row["svname"]: row for row in csv.DictReader(lines)
                if row["pxname"] == "replicas" and row["svname"] not in ("BACKEND", "FRONTEND")}

    def wait_status(self, server: str, wanted: str, seconds: float = 120) -> float:
        """Wait until HAProxy's check says ``wanted`` (UP or DOWN) for ``server``; return the time it did."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            state = self.servers()[server]
            if state["status"] == wanted and (wanted != "UP" or state["check_status"] == "L7OK"):
                return time.time()
            time.sleep(0.02)
        pytest.fail(f"HAProxy never saw {server} {wanted}: {self.servers()[server]}")

    def text(self) -> str:
        """Return what HAProxy logged (requests and server state changes)."""
        return self.log.read_text(errors="replace") + self.errors.read_text(errors="replace")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@dataclass
class Outcome:
    """One upload through the load balancer."""

    rid: str
    started: float
    ended: float
    status: str  # the HTTP status, or the exception's name


def keep_uploading(base: str, client: int, stop: threading.Event, outcomes: list[Outcome]) -> None:
    """Upload the cat photo again and again on one keep-alive connection until ``stop``."""
    photo = (DATA / "chelsea.jpg").read_bytes()
    session = requests.Session()
    number = 0
    while not stop.is_set():
        rid, number = f"c{client}-{number}", number + 1
        started = time.time()
        try:
            answer = session.post(f"{base}/api/v1/predict", headers={"X-Request-ID": rid}, timeout=30,
                                  files={"file": ("chelsea.jpg", photo, "image/jpeg")})
            status = str(answer.status_code)
        except requests.RequestException as exc:
            status = type(exc).__name__
        outcomes.append(Outcome(rid, started, time.time(), status))


@pytest.fixture
def cluster(prod_image: str) -> Iterator[tuple[list[Replica], HAProxy]]:
    """Three replicas up and HAProxy seeing them UP; everything removed afterwards."""
    if not Path(HAPROXY).exists():
        pytest.fail(f"{HAPROXY} not found: apt-get install haproxy (.ci/run does)")
    folder = Path(tempfile.mkdtemp(prefix="snakes-haproxy-"))  # short: a unix socket path has 108 bytes
    replicas: list[Replica] = []
    balancer = None
    try:
        for index in range(REPLICAS):
            replicas.append(Replica(index, prod_image))
            replicas[-1].start()
        balancer = HAProxy(replicas, folder)
        for replica in replicas:
            balancer.wait_status(replica.server, "UP")
        yield replicas, balancer
    finally:
        if balancer is not None:
            balancer.close()
            (ROOT / "test-artifacts").mkdir(exist_ok=True)
            shutil.copy(balancer.log, ROOT / "test-artifacts" / "load-balancer-haproxy.log")
        for replica in replicas:
            replica.remove()
        shutil.rmtree(folder, ignore_errors=True)


def test_rolling_replacement_loses_no_request_and_a_killed_replica_only_its_own(
        cluster: tuple[list[Replica], HAProxy]) -> None:
    replicas, balancer = cluster
    base = f"http://127.0.0.1:{balancer.port}"
    stop, outcomes = threading.Event(), []  # type: ignore[var-annotated]
    clients = [threading.Thread(target=keep_uploading, args=(base, n, stop, outcomes)) for n in range(CLIENTS)]
    for thread in clients:
        thread.start()
    try:
        # Steady load: what each replica serves.
        time.sleep(1)
        before, started = balancer.servers(), time.monotonic()
        time.sleep(STEADY_SECONDS)
        after, seconds = balancer.servers(), time.monotonic() - started
        per_replica = {name: round((int(after[name]["hrsp_2xx"]) - int(before[name]["hrsp_2xx"])) / seconds, 1)
                       for name in after}

        # Replace every replica in turn, as a rolling update does: SIGTERM, then a new one.
        rolled_from = time.time()
        exit_codes, replaced_in = [], []
        for replica in replicas:
            began = time.monotonic()
            exit_codes.append(replica.stop())
            replica.start()
            balancer.wait_status(replica.server, "UP")
            replaced_in.append(round(time.monotonic() - began, 1))
        rolled_until = time.time()
        time.sleep(1)

        # Kill one outright.
        victim = replicas[1]
        in_flight = int(balancer.servers()[victim.server]["scur"])  # its requests being served just before
        killed_from = time.time()
        victim.kill()
        killed_at = time.time()
        down_at = balancer.wait_status(victim.server, "DOWN", seconds=30)
        sent_at_down = int(balancer.servers()[victim.server]["stot"])
        time.sleep(3)
        sent_later = int(balancer.servers()[victim.server]["stot"])
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=60)

    log = balancer.text()
    # HAProxy writes a request's line when its stream ends, without blocking on its log output: wait until
    # every answered request is there (or 3 s), and count any line it still lacks as unknown, not as fine.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and any(f"rid={o.rid} " not in log for o in outcomes if o.status == "200"):
        time.sleep(0.5)
        log = balancer.text()
    access_logs = {}  # each live container's gunicorn access log: which request ids it answered
    for replica in replicas:
        logs = run(tool("podman"), "logs", replica.container)
        access_logs[replica.server] = logs.stdout + logs.stderr
    routed = {line.split("rid=", 1)[1].split()[0]: line for line in log.splitlines() if "rid=" in line}
    rolling = [o for o in outcomes if o.ended > rolled_from and o.started < rolled_until]
    before_kill = [o for o in outcomes if o.ended < killed_from]
    after_kill = [o for o in outcomes if o.started > killed_at]
    failed = [o for o in outcomes if o.status != "200"]
    summary = {
        "clients": CLIENTS, "replicas": REPLICAS, "cpus_per_replica": 1, "health_check": CHECK,
        "drain_seconds": DRAIN_SECONDS,
        "steady_images_per_second_per_replica": per_replica,
        "steady_images_per_second_total": round(sum(per_replica.values()), 1),
        "rolling": {"requests": len(rolling), "outcomes": dict(Counter(o.status for o in rolling)),
                    "retried_by_haproxy": sum("retries=0" not in routed.get(o.rid, "retries=0") for o in rolling),
                    "not_in_haproxy_log": sum(o.rid not in routed for o in rolling),
                    "exit_codes": exit_codes, "seconds_per_replacement": replaced_in},
        "before_the_kill": {"requests": len(before_kill), "failed": sum(o.status != "200" for o in before_kill)},
        "kill": {"failed": len(failed), "failed_statuses": dict(Counter(o.status for o in failed)),
                 "failed_in_haproxy_log": [routed.get(o.rid, "(not logged)") for o in failed],
                 "in_flight_at_it": in_flight, "requests_after": len(after_kill),
                 "outcomes_after": dict(Counter(o.status for o in after_kill)),
                 "seconds_to_down": round(down_at - killed_at, 2),
                 "sent_to_it_after_down": sent_later - sent_at_down},
    }
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))

    # Every replica served, and was stopped cleanly (exit 0: drained, not killed at the timeout).
    assert all(rate > 0 for rate in per_replica.values()), per_replica
    assert exit_codes == [0] * REPLICAS
    # HAProxy took each one out because its /readyz said 503, while it still answered ...
    for replica in replicas:
        assert f"Server replicas/{replica.server} is DOWN, reason: Layer7 wrong status, code: 503" in log, \
            log[-3000:]
    # ... so that not one request failed, from the start until the kill; and during the replacements none
    # even needed HAProxy to retry a refused connection elsewhere (a balancer without retries, such as
    # kube-proxy, would have lost none either): each replica was out before it stopped listening.
    assert rolling and before_kill
    assert Counter(o.status for o in before_kill) == Counter({"200": len(before_kill)})
    retried = [routed[o.rid] for o in rolling if o.rid in routed and "retries=0" not in routed[o.rid]]
    assert not retried, retried
    unlogged = [o.rid for o in rolling if o.rid not in routed]
    assert len(unlogged) <= len(rolling) // 100, unlogged  # a rare lost log line, never a pattern
    # The killed replica: only what it had in flight failed: sent to it before the kill, cut by it ...
    for outcome in failed:
        assert outcome.started < killed_at and outcome.ended > killed_from, outcome
        # HAProxy logged it as sent to the killed replica, or not at all (it closed the client's connection
        # without an answer, as a server whose keep-alive connection dies does); no other replica had it.
        assert f"srv={victim.server} " in routed.get(outcome.rid, f"srv={victim.server} "), routed[outcome.rid]
        assert not [server for server, text in access_logs.items() if f"rid={outcome.rid} " in text], outcome
    assert any(f"rid={before_kill[-1].rid} " in text for text in access_logs.values())  # the logs do show ids
    assert len(failed) <= CLIENTS  # each client has one request in flight at most
    # ... then HAProxy's check took it out and sent it nothing more; the others answered everything.
    assert f"Server replicas/{victim.server} is DOWN, reason: Layer4" in log
    assert sent_later == sent_at_down
    assert after_kill and all(o.status == "200" for o in after_kill)
