"""rec-requests: a service asks for a user's list; the answer goes to the recommendations topic
with ``trigger: "request"`` and the request's ``request_id``."""

from __future__ import annotations

from stream.agents.pipeline import Record
from stream.agents.retry import until_done
from stream.agents.runtime import runtime
from stream.app import app, rec_requests_topic
from stream.contract import InvalidEvent, validate_rec_request


@app.agent(rec_requests_topic, concurrency=1)
async def requests(stream):
    async for events in stream.take_events(100, within=0.05):
        valid = []
        for event in events:
            msg = event.message
            try:
                req = validate_rec_request(msg.value if msg.value is not None else b"")
            except InvalidEvent as exc:
                await runtime.ingestor.reject(Record(msg.topic, msg.partition, msg.offset, msg.key, msg.value),
                                              exc.reason, str(exc))
                continue
            valid.append(req)
        # answers are idempotent to repeat; never drop a batch of requests
        await until_done(f"answering {len(valid)} rec-requests", lambda: runtime.ingestor.answer(valid))

