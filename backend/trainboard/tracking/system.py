"""System metrics of a run's processes: CPU, memory, and each GPU's use through NVML.

Every sample is a point whose step is the whole seconds since the sampler started, so the
curves have a time axis of their own and two samples never share a step."""

from __future__ import annotations

import os
import time
from typing import Any

import psutil

from trainboard.tracking.spool import Point

SYSTEM_SECONDS = float(os.environ.get("TRAINBOARD_SYSTEM_SECONDS", "5"))


def _nvml() -> Any:
    """pynvml, initialised, when nvidia-ml-py is installed and a GPU answers; else None."""
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
        return pynvml if pynvml.nvmlDeviceGetCount() > 0 else None
    except Exception:
        return None


class SystemSampler:
    """Samples `pid` (default this process) and its children every `period` seconds."""

    def __init__(self, pid: int | None = None, period: float = SYSTEM_SECONDS) -> None:
        self.process = psutil.Process(pid or os.getpid())
        self.period = period
        self.start = time.monotonic()
        self.known: dict[int, psutil.Process] = {}
        self.nvml = _nvml()

    def processes(self) -> list[psutil.Process]:
        # The same Process objects each time: cpu_percent measures since its own last call.
        try:
            current = [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            return []
        self.known = {p.pid: self.known.get(p.pid, p) for p in current}
        return list(self.known.values())

    def sample(self) -> list[Point]:
        """This moment's points (CPU percent is since the previous sample); none once the
        process has ended."""
        processes = self.processes()
        if not processes:
            return []  # the process has ended: no sample rather than zeros
        cpu, memory = 0.0, 0.0
        for process in processes:
            try:
                cpu += process.cpu_percent(None)
                memory += process.memory_info().rss / 2**20
            except psutil.Error:
                continue  # a child that ended between listing and reading
        step, now = int(time.monotonic() - self.start), time.time()
        points: list[Point] = [
            ("system/cpu_percent", step, cpu, now),
            ("system/memory_mb", step, memory, now),
        ]
        if self.nvml is not None:
            points.extend(self._gpus(step, now))
        return points

    def _gpus(self, step: int, now: float) -> list[Point]:
        nvml, points = self.nvml, []
        try:
            for i in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                use = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
                used = nvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20
                points.append((f"system/gpu{i}_util", step, float(use), now))
                points.append((f"system/gpu{i}_memory_mb", step, float(used), now))
        except Exception:
            self.nvml = None  # a GPU that stops answering is left out from then on
        return points
