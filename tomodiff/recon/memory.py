"""Peak memory of a block of code: CUDA allocator peak, or the process's resident set on the CPU."""

from __future__ import annotations

import resource
import threading
import time

import torch


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:  # not Linux: the lifetime peak is the best we have
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """``with PeakMemory(device) as pm: ...`` then ``pm.peak_mb``: the peak above the start, MiB.

    On CUDA devices it reads the allocator's peak; on the CPU a background thread samples the
    resident set size every ``interval`` seconds (so very short spikes may be missed).
    """

    def __init__(self, device=None, interval: float = 0.01):
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.interval, self.peak_mb = interval, 0.0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        self._base = self._peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self._peak = max(self._peak, _rss_bytes())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, _rss_bytes())
        self.peak_mb = max(0.0, (peak - self._base) / 2**20)
        return False
