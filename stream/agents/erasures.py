"""user-erasures: erase a user, as the worker that owns their partition (stream/engine/erase.py)."""

from __future__ import annotations

from stream.agents.ingest import to_record
from stream.agents.retry import until_done
from stream.agents.runtime import runtime
from stream.app import app, erasures_topic

__all__ = ["erasures"]


@app.agent(erasures_topic, concurrency=1)
async def erasures(stream):
    # take_events acks the batch after the body: retried until done (a repeated erasure deletes
    # nothing more and is answered already_erased)
    async for events in stream.take_events(100, within=0.05):
        records = [to_record(ev) for ev in events]
        await until_done(f"{len(records)} erasure requests", lambda: runtime.eraser.handle(records))
