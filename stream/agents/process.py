"""The worker process's own set-up once its app has started (every module imported by then):
its garbage collector (:mod:`stream.gctune`, STREAMREC_GC_THRESHOLD), and the CPU seconds of its
event loop's thread on /metrics (:class:`stream.metrics.ThreadCpu`)."""

from __future__ import annotations

import gc
import logging
import threading

from stream.app import app, settings
from stream.gctune import tune_gc
from stream.metrics import REGISTRY, ThreadCpu

log = logging.getLogger(__name__)


@app.task
async def tune_collector() -> None:
    tune_gc(settings.gc_threshold)
    if settings.gc_threshold:
        log.info("garbage collector: %d objects frozen, thresholds %s", gc.get_freeze_count(), gc.get_threshold())


_loop_cpu: ThreadCpu | None = None


@app.task
async def watch_loop_cpu() -> None:
    global _loop_cpu
    if _loop_cpu is None:  # once a process (an app started again keeps its loop)
        _loop_cpu = ThreadCpu(threading.get_ident())  # a task runs in the loop's thread
        REGISTRY.register(_loop_cpu)
