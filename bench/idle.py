"""Wait for a shared machine to be idle before a timed measurement (Linux /proc/stat)."""

import time


def _cpu_times():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals) - idle, sum(vals)


def wait_until_idle(max_busy=0.1, window=1.0, timeout=120.0):
    """Wait until the machine's CPU use over `window` s is below `max_busy`.

    Called between repetitions, when this process itself is idle, so the busy
    share measured is other processes'. On a 2-core machine another process
    that runs during a repetition ruins it (the OpenMP threads spin on a core
    they do not get). Returns the busy share last seen; gives up after timeout
    (the repetition then runs anyway and the share is recorded). Linux only.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            b0, t0 = _cpu_times()
            time.sleep(window)
            b1, t1 = _cpu_times()
        except OSError:
            return None
        busy = (b1 - b0) / max(1, t1 - t0)
        if busy < max_busy or time.monotonic() > deadline:
            return round(busy, 3)


class OthersLoad:
    """Share of the machine's CPU used by *other* processes during a `with` block.

    Machine busy time (from /proc/stat) minus this process's CPU time, over the
    machine's total time; 0 on an idle machine, up to 1 when others take every
    core. None where /proc/stat is unreadable.
    """

    def __enter__(self):
        try:
            self._b0, self._t0 = _cpu_times()
        except OSError:
            self._b0 = None
        self._p0 = time.process_time()
        self.share = None
        return self

    def __exit__(self, *exc):
        if self._b0 is None:
            return False
        import os
        hz = os.sysconf("SC_CLK_TCK")
        b1, t1 = _cpu_times()
        own = time.process_time() - self._p0
        total = (t1 - self._t0) / hz
        if total > 0:
            self.share = round(max(0.0, ((b1 - self._b0) / hz - own) / total), 3)
        return False
