"""What the pipeline benchmark reads off the workers' /metrics: histograms and counters summed
over the workers of a phase. ``headers``: what a client sends (the bearer token, when /metrics
is closed; ``Settings.http_headers``)."""

from __future__ import annotations

import time
import urllib.request

__all__ = ["scrape_buckets", "scrape_sums", "scrape_all", "Rejected", "handled_per_worker"]


def _metrics(port: int, headers: dict | None) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return resp.read().decode()


def scrape_buckets(ports: list[int], name: str, headers: dict | None = None) -> list[tuple[float, float]]:
    """A histogram's cumulative (upper bound, count) buckets, summed over the workers on ``ports``."""
    total: dict[float, float] = {}
    for port in ports:
        for line in _metrics(port, headers).splitlines():
            if line.startswith(f"{name}_bucket{{"):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                bound = float("inf") if le == "+Inf" else float(le)
                total[bound] = total.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return sorted(total.items())


def scrape_sums(port: int, names: tuple[str, ...], headers: dict | None = None) -> dict[str, float]:
    """Each named series summed over its label sets (e.g. a histogram's ``_sum`` and ``_count``); a
    name with its labels, as /metrics writes them (``name{label="value"}``), is that series alone."""
    out = dict.fromkeys(names, 0.0)
    for line in _metrics(port, headers).splitlines():
        series, _, value = line.rpartition(" ")
        name = series.split("{", 1)[0]
        if name in out:
            out[name] += float(value)
        if series != name and series in out:
            out[series] += float(value)
    return out


def scrape_all(ports: list[int], names: tuple[str, ...], headers: dict | None = None) -> dict[str, float]:
    """:func:`scrape_sums` added up over the workers on ``ports``."""
    out = dict.fromkeys(names, 0.0)
    for port in ports:
        for k, v in scrape_sums(port, names, headers).items():
            out[k] += v
    return out


class Rejected:
    """Events the workers on ``ports`` dead-lettered (streamrec_invalid_events_total), scraped at most
    every ``every`` seconds (the driver polls every 20 ms)."""

    def __init__(self, ports: list[int], headers: dict | None = None, every: float = 0.5):
        self.ports, self.headers, self.every, self.value, self.at = ports, headers, every, 0, float("-inf")

    def __call__(self) -> int:
        if time.monotonic() - self.at >= self.every:
            self.at = time.monotonic()
            try:
                self.value = int(scrape_all(self.ports, ("streamrec_invalid_events_total",), self.headers)
                                 ["streamrec_invalid_events_total"])
            except OSError:  # a worker that is gone is reported by the phase's check of its processes
                pass
        return self.value


def handled_per_worker(ports: list[int], n: int, headers: dict | None = None, timeout: float = 30.0) -> list[float]:
    """Events each worker has handled (its streamrec_batch_events), once they add up to ``n``: a
    batch is counted after its commit, its pushes and its sends, so the last ones lag the commit."""
    deadline = time.monotonic() + timeout
    while True:
        handled = [scrape_sums(p, ("streamrec_batch_events_sum",), headers)["streamrec_batch_events_sum"]
                   for p in ports]
        if sum(handled) >= n or time.monotonic() > deadline:
            return handled
        time.sleep(0.1)
