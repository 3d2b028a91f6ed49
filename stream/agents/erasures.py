"""user-erasures: erase a user, as the worker that owns their partition (stream/engine/erase.py)."""

from __future__ import annotations

from stream.agents.ingest import to_record
from stream.agents.retry import until_done
from stream.agents.runtime import runtime
from stream.app import app, erasures_topic, settings
from stream.faustapp.take import batches

__all__ = ["erasures"]


@app.agent(erasures_topic, concurrency=1)
async def erasures(stream):
    # the batch is acked after the body: retried until done (a repeated erasure deletes
    # nothing more and is answered already_erased)
    async for events in batches(stream, 100, 0.05, lean=settings.faust_lean_take):
        records = [to_record(ev) for ev in events]
        await until_done(f"{len(records)} erasure requests", lambda: runtime.eraser.handle(records))
