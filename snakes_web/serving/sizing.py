"""How many gunicorn workers, and how many inference threads each, this machine can carry.

Cores come from the CPU affinity mask and the cgroup CPU quota (v2 ``cpu.max``, v1
``cpu.cfs_quota_us``/``cpu.cfs_period_us``); memory from the cgroup limit (v2 ``memory.max``, v1
``memory.limit_in_bytes``) and ``MemAvailable``, whichever is smaller. Workers are as many as the
cores, but never more than fit in memory; threads per worker are the cores shared between them, so
workers × threads never exceed the cores. Imports nothing heavy: gunicorn.conf.py runs it in the master.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .budget import CAP_MB, least_mb

#: Resident memory one worker needs, by backend, in MB: measured with the default model after a
#: prediction (fastai ≈ 1.1 GB: torch + fastai; onnx ≈ 150 MB), plus headroom for large images.
WORKER_MEMORY_MB = {"fastai": 1300, "onnx": 250}
#: What the gunicorn master itself holds, in MB.
MASTER_MEMORY_MB = 60
_UNLIMITED = 1 << 60  # cgroup v1 writes a number near 2**63 for "no limit"


@dataclass(frozen=True)
class Plan:
    """Workers, inference threads per worker, and the facts they were computed from."""

    workers: int
    threads: int
    cores: int
    memory_mb: int | None
    worker_memory_mb: int
    reason: str
    input_budget_mb: int = CAP_MB

    def describe(self) -> str:
        """Say in one line what was chosen and why."""
        memory = f"{self.memory_mb} MB" if self.memory_mb is not None else "unknown memory"
        threads = "1 inference thread each" if self.threads == 1 else f"{self.threads} inference threads each"
        workers = f"{self.workers} worker{'' if self.workers == 1 else 's'}"
        return (f"{workers} × {threads} ({self.cores} cores, {memory}, "
                f"~{self.worker_memory_mb} MB per worker; {self.reason}); "
                f"{self.input_budget_mb} MB each for uploads and downloads in flight")


def available_cores(cgroup_root: Path = Path("/sys/fs/cgroup"), cgroup_self: Path = Path("/proc/self/cgroup"),
                    affinity: int | None = None) -> int:
    """Return the cores this process may use: the affinity mask, capped by the cgroup CPU quota."""
    if affinity is None:
        affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cpu_quota(cgroup_root, cgroup_self)
    return max(1, min(affinity, math.ceil(quota)) if quota else affinity)


def available_memory_mb(cgroup_root: Path = Path("/sys/fs/cgroup"), cgroup_self: Path = Path("/proc/self/cgroup"),
                        meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Return the memory the server may use, in MB: the cgroup limit or MemAvailable, the smaller."""
    candidates = [value for value in (_memory_limit(cgroup_root, cgroup_self), _mem_available(meminfo)) if value]
    return min(candidates) // (1024 * 1024) if candidates else None


def plan(backend: str, cores: int, memory_mb: int | None, *, workers: int = 0, threads: int = 0,
         worker_memory_mb: int = 0, input_budget_mb: int = 0, least_budget_mb: int = 0) -> Plan:
    """Choose workers, threads and input budget; a non-zero ``workers``/``threads``/budget is taken as given."""
    per_worker = worker_memory_mb or WORKER_MEMORY_MB.get(backend, WORKER_MEMORY_MB["fastai"])
    if workers:
        reason = "workers as configured"
    else:
        fit = cores if memory_mb is None else (memory_mb - MASTER_MEMORY_MB) // per_worker
        workers = max(1, min(cores, fit))
        reason = "one per core" if workers == cores else f"memory fits {max(fit, 0)}"
        if fit < 1:
            reason += "; below one worker's need, starting one anyway"
    threads = threads or max(1, cores // workers)
    budget = input_budget_mb or left_for_inputs(memory_mb, workers, per_worker, least_budget_mb)
    return Plan(workers, threads, cores, memory_mb, per_worker, reason, budget)


def left_for_inputs(memory_mb: int | None, workers: int, per_worker: int, least_mb: int) -> int:
    """Return the MB a worker's share of memory leaves after its own need, between ``least_mb`` and the cap."""
    if memory_mb is None:
        return max(least_mb, CAP_MB)
    share = (memory_mb - MASTER_MEMORY_MB) // workers
    return max(least_mb, min(CAP_MB, share - per_worker))


def plan_from_settings(settings: Mapping[str, Any], environ: Mapping[str, str], backend: str) -> Plan:
    """Plan from the app's settings and the environment (``WEB_CONCURRENCY`` as on Heroku)."""
    cores = int(settings.get("CORES") or 0) or available_cores()
    memory = int(settings.get("MEMORY_LIMIT_MB") or 0) or available_memory_mb()
    workers = int(settings.get("WORKERS") or 0) or int(environ.get("WEB_CONCURRENCY") or 0)
    return plan(backend, cores, memory, workers=workers, threads=int(settings.get("TORCH_THREADS") or 0),
                worker_memory_mb=int(settings.get("WORKER_MEMORY_MB") or 0),
                input_budget_mb=int(settings.get("INPUT_BUDGET_MB") or 0),
                least_budget_mb=least_mb(int(settings.get("MAX_UPLOAD_BYTES") or 0)))


def _cgroup_dirs(root: Path, cgroup_self: Path, controller: str) -> list[Path]:
    """Return the folders to look in: this process's own cgroup first, then the root (containers)."""
    dirs = []
    try:
        for line in cgroup_self.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":  # v2: "0::/path"
                dirs.append(root / path.lstrip("/"))
            elif controller in controllers.split(","):  # v1: "4:cpu,cpuacct:/path"
                dirs.append(root / controllers / path.lstrip("/"))
    except (OSError, ValueError):
        pass
    return [*dirs, root, root / controller]


def _cpu_quota(root: Path, cgroup_self: Path) -> float | None:
    """Return the CPU quota in cores, or None when there is none."""
    for folder in _cgroup_dirs(root, cgroup_self, "cpu"):
        try:
            text = _read(folder / "cpu.max")
            if text is not None:  # v2: "max 100000" or "150000 100000"
                quota, _, period = text.partition(" ")
                return None if quota == "max" else int(quota) / int(period or 100000)
            quota_us, period_us = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
            if quota_us is not None and period_us is not None:  # v1: -1 means no limit
                return None if int(quota_us) <= 0 else int(quota_us) / int(period_us)
        except (ValueError, ZeroDivisionError):
            return None  # an unreadable quota is no quota
    return None


def _memory_limit(root: Path, cgroup_self: Path) -> int | None:
    """Return the cgroup memory limit in bytes, or None when there is none."""
    for folder in _cgroup_dirs(root, cgroup_self, "memory"):
        for name in ("memory.max", "memory.limit_in_bytes"):
            text = _read(folder / name)
            if text is not None:
                return None if text == "max" or not text.isdigit() or int(text) >= _UNLIMITED else int(text)
    return None


def _mem_available(meminfo: Path) -> int | None:
    """Return MemAvailable from /proc/meminfo in bytes."""
    text = _read(meminfo)
    for line in (text or "").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def _read(path: Path) -> str | None:
    """Return a file's stripped text, or None when it cannot be read or parsed."""
    try:
        return path.read_text().strip()
    except (OSError, ValueError):
        return None
