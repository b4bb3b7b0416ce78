"""Worker sizing: cores and memory from the affinity mask, cgroup v1/v2 limits and MemAvailable."""
from __future__ import annotations

from pathlib import Path

import pytest

from snakes_web.serving.sizing import available_cores, available_memory_mb, plan, plan_from_settings

GB = 1024 ** 3


def cgroup(tmp_path: Path, files: dict[str, str], self_line: str = "0::/") -> tuple[Path, Path]:
    """Write fake cgroup files under tmp_path/cgroup and a fake /proc/self/cgroup."""
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")
    root.mkdir(exist_ok=True)
    self_file = tmp_path / "self-cgroup"
    self_file.write_text(self_line + "\n")
    return root, self_file


def meminfo(tmp_path: Path, available_kb: int) -> Path:
    path = tmp_path / "meminfo"
    path.write_text(f"MemTotal:       99999999 kB\nMemFree:  1 kB\nMemAvailable:   {available_kb} kB\n")
    return path


@pytest.mark.parametrize("files, affinity, cores", [
    ({"cpu.max": "max 100000"}, 8, 8),                                   # v2, no quota
    ({"cpu.max": "150000 100000"}, 8, 2),                                # v2, 1.5 cores → 2
    ({"cpu.max": "400000 100000"}, 2, 2),                                # quota above the affinity
    ({"cpu/cpu.cfs_quota_us": "100000", "cpu/cpu.cfs_period_us": "100000"}, 8, 1),   # v1
    ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, 4, 4),       # v1, no quota
    ({}, 3, 3),                                                          # no cgroup files at all
    ({"cpu.max": "garbage"}, 4, 4),                                      # unreadable: no quota
])
def test_cores_are_the_affinity_capped_by_the_cgroup_quota(tmp_path: Path, files: dict[str, str],
                                                           affinity: int, cores: int) -> None:
    root, self_file = cgroup(tmp_path, files)
    assert available_cores(root, self_file, affinity=affinity) == cores


def test_the_process_own_cgroup_v2_folder_wins(tmp_path: Path) -> None:
    root, self_file = cgroup(tmp_path, {"cpu.max": "max 100000", "app/web/cpu.max": "100000 100000"},
                             self_line="0::/app/web")
    assert available_cores(root, self_file, affinity=8) == 1


@pytest.mark.parametrize("files, available_kb, megabytes", [
    ({"memory.max": str(512 * 1024 * 1024)}, 20 * 1024 * 1024, 512),            # v2 limit below free
    ({"memory.max": "max"}, 3 * 1024 * 1024, 3072),                            # v2 unlimited
    ({"memory/memory.limit_in_bytes": str(GB)}, 20 * 1024 * 1024, 1024),         # v1 limit
    ({"memory/memory.limit_in_bytes": "9223372036854771712"}, 2 * 1024 * 1024, 2048),  # v1 "unlimited"
    ({"memory.max": str(8 * GB)}, 1024 * 1024, 1024),                          # less available than the limit
])
def test_memory_is_the_cgroup_limit_or_what_is_available_whichever_is_smaller(
        tmp_path: Path, files: dict[str, str], available_kb: int, megabytes: int) -> None:
    root, self_file = cgroup(tmp_path, files)
    assert available_memory_mb(root, self_file, meminfo(tmp_path, available_kb)) == megabytes


@pytest.mark.parametrize("backend, cores, memory, workers, threads", [
    ("onnx", 2, 24000, 2, 1),      # this machine: one single-threaded worker per core
    ("fastai", 2, 24000, 2, 1),
    ("onnx", 8, 512, 1, 8),        # a 512 MB dyno: one ONNX worker fits, it gets every core
    ("fastai", 8, 512, 1, 8),      # not even one fastai worker fits: one anyway, said in the reason
    ("fastai", 8, 3000, 2, 4),     # memory caps workers; threads share the cores
    ("onnx", 4, None, 4, 1),       # unknown memory: one per core
])
def test_workers_follow_cores_and_memory_and_threads_share_the_cores(
        backend: str, cores: int, memory: int | None, workers: int, threads: int) -> None:
    chosen = plan(backend, cores, memory)
    assert (chosen.workers, chosen.threads) == (workers, threads)
    assert chosen.workers * chosen.threads <= cores


def test_a_worker_that_does_not_fit_is_said_so() -> None:
    assert "below one worker's need" in plan("fastai", 2, 512).describe()


def test_settings_and_web_concurrency_override_the_detection() -> None:
    settings = {"CORES": 4, "MEMORY_LIMIT_MB": 100_000, "WORKERS": 0, "TORCH_THREADS": 0, "WORKER_MEMORY_MB": 0}
    assert plan_from_settings(settings, {"WEB_CONCURRENCY": "3"}, "onnx").workers == 3
    assert plan_from_settings({**settings, "WORKERS": 1}, {"WEB_CONCURRENCY": "3"}, "onnx").workers == 1
    assert plan_from_settings({**settings, "WORKERS": 1}, {}, "onnx").threads == 4
    assert plan_from_settings({**settings, "TORCH_THREADS": 2}, {}, "onnx").threads == 2
    small = {**settings, "MEMORY_LIMIT_MB": 1000}
    assert plan_from_settings(small, {}, "onnx").workers == 3                    # 250 MB each
    assert plan_from_settings({**small, "WORKER_MEMORY_MB": 400}, {}, "onnx").workers == 2
