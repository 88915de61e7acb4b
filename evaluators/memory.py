"""Peak memory of one trial: CUDA max allocated on a GPU, the process's resident set on
the CPU (psutil sampled in a thread: the kernel's own peak, ``ru_maxrss``, never goes
down, so it cannot tell one trial of a long search from the next)."""
from __future__ import annotations

import threading
from typing import Optional

import torch


class PeakMemory:
    """``with PeakMemory(device) as peak: ...`` then ``peak.mib``."""

    def __init__(self, device: torch.device, interval_s: float = 0.02) -> None:
        self.device, self.interval_s = device, interval_s
        self.mib: float = float("nan")
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._peak = 0

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            import psutil

            process = psutil.Process()
            self._peak = process.memory_info().rss

            def sample() -> None:
                while not self._stop.wait(self.interval_s):
                    self._peak = max(self._peak, process.memory_info().rss)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.mib = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        import psutil

        self.mib = max(self._peak, psutil.Process().memory_info().rss) / 2**20
