"""The load generator (its own process): keeps a fixed number of requests in flight and times each answer."""
from __future__ import annotations

import http.client
import socket
import threading
import time
import uuid
from pathlib import Path

from .scenarios import Load


def multipart(data: bytes, filename: str) -> tuple[bytes, str]:
    """Encode ``data`` as a multipart/form-data body with one field ``file``."""
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post(host: str, port: int, body: bytes, content_type: str) -> int:
    """POST one image to /api/v1/predict on a fresh connection; return the status."""
    connection = http.client.HTTPConnection(host, port, timeout=120)
    try:
        connection.request("POST", "/api/v1/predict", body=body,
                           headers={"Content-Type": content_type, "Content-Length": str(len(body))})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def raw_request(host: str, port: int, body: bytes, content_type: str, path: str = "/api/v1/predict") -> bytes:
    """Return the bytes of one HTTP/1.1 POST to ``path``, built once and sent as is."""
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    return head + body


def send(host: str, port: int, request: bytes) -> int:
    """Send a prepared request on a new connection, read the answer to the end; return the status."""
    return exchange(host, port, request)[0]


def exchange(host: str, port: int, request: bytes) -> tuple[int, int]:
    """Send a prepared request on a new connection; return the answer's status and body size in bytes."""
    with socket.create_connection((host, port), timeout=120) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    if not answer.startswith(b"HTTP/1."):
        return 0, 0
    return int(answer[9:12]), len(answer) - answer.find(b"\r\n\r\n") - 4


def drive(host: str, port: int, image: Path, concurrency: int, warmup: float, duration: float,
          path: str = "/api/v1/predict") -> Load:
    """Keep ``concurrency`` requests in flight: ``warmup`` seconds unmeasured, then ``duration`` measured.

    Each request is built with a boundary of its own, as browsers and HTTP libraries send them (a
    parser that compiles something per boundary pays for it here as it would in use), and sent over
    a plain socket: the load generator shares the cores with the server, so it does little else.
    """
    data = image.read_bytes()

    def fresh() -> bytes:
        return raw_request(host, port, *multipart(data, image.name), path=path)
    start = time.monotonic()
    measure_from, stop_at = start + warmup, start + warmup + duration
    latencies: list[float] = []
    counts = {"errors": 0, "total": 0}
    lock = threading.Lock()

    def run() -> None:
        while True:
            began = time.monotonic()
            if began >= stop_at:
                return
            status = send(host, port, fresh())
            ended = time.monotonic()
            with lock:
                counts["total"] += 1
                if began >= measure_from and ended <= stop_at:  # only requests wholly inside the window
                    latencies.append((ended - began) * 1000)
                    counts["errors"] += status != 200

    idle: list[float] = []
    threads = [threading.Thread(target=run) for _ in range(concurrency)]
    threads.append(threading.Thread(target=lambda: idle.append(idle_share(measure_from, stop_at))))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Load(len(latencies), duration, latencies, counts["errors"], counts["total"],
                answer_bytes=exchange(host, port, fresh())[1], idle=idle[0] if idle else float("nan"))


def cpu_times() -> tuple[int, int]:
    """Return the machine's (idle, all) CPU time so far in ticks, from /proc/stat (idle counts iowait too)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    return fields[3] + fields[4], sum(fields[:8])  # user nice system idle iowait irq softirq steal


def idle_share(start: float, stop: float) -> float:
    """Sleep until ``start`` (monotonic), then return the share of the machine's CPU left idle until ``stop``."""
    time.sleep(max(0.0, start - time.monotonic()))
    idle, total = cpu_times()
    time.sleep(max(0.0, stop - time.monotonic()))
    idle_after, total_after = cpu_times()
    return (idle_after - idle) / max(1, total_after - total)
