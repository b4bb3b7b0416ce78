"""Prometheus metrics at /metrics: requests by endpoint and status, latency, inference and model load time."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from snakes_web import create_app
from tests.conftest import DATA, FakePredictor, free_port, image_bytes


@pytest.fixture
def settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The in-process tests read /metrics from the app itself: no gunicorn master here to serve the port."""
    return {**settings, "METRICS_PORT": 0}


def samples(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Scrape /metrics and return {(sample name, sorted labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True)) for s in family.samples}


def requests_total(scraped: dict[Any, float], endpoint: str, method: str, status: str) -> float:
    key = ("snakes_http_requests_total", (("endpoint", endpoint), ("method", method), ("status", status)))
    return scraped.get(key, 0.0)


def test_requests_are_counted_by_endpoint_method_and_status(client: Any, upload: Any) -> None:
    for _ in range(3):
        client.get("/api/v1/model")
    upload(b"not an image at all")
    scraped = samples(client)
    assert requests_total(scraped, "/api/v1/model", "GET", "200") == 3
    assert requests_total(scraped, "/api/v1/predict", "POST", "415") == 1


def test_unknown_paths_share_one_label(client: Any) -> None:
    client.get("/wp-admin.php")
    client.get("/.env")
    assert requests_total(samples(client), "(unmatched)", "GET", "404") == 2


def test_latency_is_a_histogram_per_endpoint(client: Any) -> None:
    client.get("/healthz")
    client.get("/healthz")
    scraped = samples(client)
    assert scraped[("snakes_http_request_duration_seconds_count", (("endpoint", "/healthz"),))] == 2
    assert scraped[("snakes_http_request_duration_seconds_bucket", (("endpoint", "/healthz"), ("le", "+Inf")))] == 2


def test_inference_is_timed_for_the_api_and_the_page(client: Any, upload: Any) -> None:
    upload(image_bytes())
    upload(image_bytes(), path="/")
    scraped = samples(client)
    assert scraped[("snakes_model_inference_seconds_count", ())] == 2
    assert scraped[("snakes_model_inference_seconds_sum", ())] > 0


def test_the_model_load_time_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    import snakes_web.model.loader as loader

    monkeypatch.setattr(loader, "load_predictor", lambda *args: FakePredictor())
    client = create_app({"MODEL": "any.pkl", "METRICS_PORT": 0}).test_client()
    assert samples(client)[("snakes_model_load_seconds", ())] == 0  # nothing loaded yet
    client.get("/api/v1/model")
    assert samples(client)[("snakes_model_load_seconds", ())] > 0


def test_each_app_counts_only_its_own_requests() -> None:
    first = create_app({"PREDICTOR": FakePredictor(), "METRICS_PORT": 0}).test_client()
    second = create_app({"PREDICTOR": FakePredictor(), "METRICS_PORT": 0}).test_client()
    first.get("/healthz")
    assert requests_total(samples(second), "/healthz", "GET", "200") == 0


def test_by_default_the_apps_own_port_has_no_metrics_gunicorns_master_serves_them() -> None:
    client = create_app({"PREDICTOR": FakePredictor()}).test_client()
    assert client.get("/metrics").status_code == 404  # SNAKES_METRICS_PORT (9464): not on the public port
    client.get("/healthz")  # still counted, for the master to serve


def test_the_metrics_port_listens_where_the_app_does() -> None:
    from snakes_web.serving.metrics_port import metrics_host

    assert metrics_host(["127.0.0.1:8000"]) == "127.0.0.1"
    assert metrics_host(["0.0.0.0:8000"]) == "0.0.0.0"
    assert metrics_host(["[::]:8000"]) == "::"
    assert metrics_host(["unix:/run/snakes.sock"]) == "127.0.0.1"  # behind a proxy: loopback


def test_metrics_can_be_turned_off() -> None:
    client = create_app({"PREDICTOR": FakePredictor(), "METRICS": False}).test_client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/api/v1/model").status_code == 200


# --- under gunicorn: two workers, one set of numbers --------------------------------------------

def served_by_pid(folder: Path, endpoint: str) -> dict[int, float]:
    """Read each worker's own counter file: how many requests to ``endpoint`` each process answered."""
    from prometheus_client.mmap_dict import MmapedDict

    served: dict[int, float] = {}
    for path in folder.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, sample, labels, _ = json.loads(key)
            if sample == "snakes_http_requests_total" and labels.get("endpoint") == endpoint:
                served[pid] = served.get(pid, 0.0) + value
    return served


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Scrape a live server's /metrics."""
    response = requests.get(f"{base}/metrics", timeout=30)
    assert response.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


@pytest.mark.slow
def test_counts_add_up_across_two_gunicorn_workers(default_model_path: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_gunicorn import metrics_base, running_gunicorn

    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_999999.db").write_bytes(b"left over from an earlier run")  # must be cleaned away
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    log = tmp_path / "gunicorn.log"
    with running_gunicorn(default_model_path, log, workers=2) as (base, _):
        sent = 24
        with ThreadPoolExecutor(max_workers=4) as pool:  # concurrent, so both workers take some
            statuses = list(pool.map(lambda _: requests.get(f"{base}/api/v1/model", timeout=30).status_code,
                                     range(sent)))
        assert statuses == [200] * sent
        with (DATA / "chelsea.jpg").open("rb") as photo:
            assert requests.post(f"{base}/api/v1/predict", files={"file": photo}, timeout=60).status_code == 200

        for _ in range(3):  # the master sums every worker's samples, scrape after scrape
            scraped = scrape(metrics_base(base))
            assert requests_total(scraped, "/api/v1/model", "GET", "200") == sent
            assert scraped[("snakes_model_inference_seconds_count", ())] >= 1
        assert requests.get(f"{base}/metrics", timeout=10).status_code == 404  # not on the app's port
        assert "/metrics on http://127.0.0.1:" in log.read_text()

        served = served_by_pid(folder, "/api/v1/model")
        assert len([pid for pid, count in served.items() if count > 0]) == 2, served
        assert sum(served.values()) == sent and 999999 not in served
        loads = {labels: value for (name, labels), value in scraped.items() if name == "snakes_model_load_seconds"}
        assert len(loads) == 2 and all(value > 0 for value in loads.values())  # one per live worker


class _Server:
    """Just enough of gunicorn's arbiter for the config's hooks."""

    class log:  # noqa: N801 - gunicorn's attribute name
        @staticmethod
        def info(*args: Any) -> None:
            pass


def test_gunicorn_gives_workers_a_fresh_metrics_folder_and_removes_it_after(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import runpy

    from tests.test_gunicorn import ROOT

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setenv("SNAKES_TORCH_THREADS", "1")
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ  # reading the config alone changes nothing
    try:
        conf["_prepare_metrics_dir"](_Server())
        folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        assert folder.is_dir() and not any(folder.iterdir())
        conf["on_exit"](_Server())
        assert not folder.exists()
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the hook sets it for real, as gunicorn needs


def test_a_dead_workers_live_gauges_are_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runpy

    from tests.test_gunicorn import ROOT

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("SNAKES_TORCH_THREADS", "1")
    (tmp_path / "gauge_liveall_4242.db").write_bytes(b"")
    (tmp_path / "counter_4242.db").write_bytes(b"")

    class Worker:
        pid = 4242

    runpy.run_path(str(ROOT / "gunicorn.conf.py"))["child_exit"](_Server(), Worker())
    assert [p.name for p in tmp_path.iterdir()] == ["counter_4242.db"]  # counts stay, totals never drop


@pytest.mark.slow
def test_a_refused_start_leaves_no_metrics_folder_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_gunicorn import start_gunicorn

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the config would make its folder
    process = start_gunicorn(tmp_path / "absent.pkl", tmp_path / "log", free_port())
    assert process.wait(timeout=60) != 0
    assert not list(tmp_path.glob("snakes-web-metrics-*"))
