"""The worker process's own set-up once its app has started (every module imported by then):
its garbage collector (:mod:`stream.gctune`, STREAMREC_GC_THRESHOLD)."""

from __future__ import annotations

import gc
import logging

from stream.app import app, settings
from stream.gctune import tune_gc

log = logging.getLogger(__name__)


@app.task
async def tune_collector() -> None:
    tune_gc(settings.gc_threshold)
    if settings.gc_threshold:
        log.info("garbage collector: %d objects frozen, thresholds %s", gc.get_freeze_count(), gc.get_threshold())
