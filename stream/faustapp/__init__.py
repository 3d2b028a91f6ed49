"""Faust as streamrec runs it.

    app.py      the one builder of a Faust app's settings (the worker's and the benchmark's
                no-op app), and the one worker command line (event loop, datadir, web port)
    monitor.py  QuietMonitor: Faust's Monitor without per-event bookkeeping
    drain.py    the lean drain: Faust's fetch loop without four tasks per message
    take.py     the lean take: the agents' micro-batches from their stream's queue in bulk
    pins.py     what both shims are pinned to: the faust-streaming release they were written
                for, and the source of each function they replace or rely on
"""

from stream.faustapp.app import StreamrecApp, build_app, faust_settings, worker_argv

__all__ = ["StreamrecApp", "build_app", "faust_settings", "worker_argv"]
