"""rec-requests: a service asks for a user's list; the answer goes to the recommendations topic
with ``trigger: "request"`` and the request's ``request_id``."""

from __future__ import annotations

from stream.agents.retry import until_done
from stream.agents.runtime import runtime
from stream.app import app, rec_requests_topic, settings
from stream.contract import InvalidEvent, validate_rec_request
from stream.engine.validate import Record
from stream.faustapp.take import batches


@app.agent(rec_requests_topic, concurrency=1)
async def requests(stream):
    async for events in batches(stream, 100, 0.05, lean=settings.faust_lean_take):
        valid, rejected = [], []
        for event in events:
            msg = event.message
            try:
                valid.append(validate_rec_request(msg.value if msg.value is not None else b""))
            except InvalidEvent as exc:
                rejected.append((Record(msg.topic, msg.partition, msg.offset, msg.key, msg.value), exc.reason,
                                 str(exc)))
        # neither is ever dropped: dead letters are sent again until delivered, and answers
        # are idempotent to repeat
        if rejected:
            await until_done(f"dead-lettering {len(rejected)} rec-requests",
                             lambda: runtime.ingest.dead_letter(rejected))

        async def answer():
            await runtime.pusher.answer(valid)
            await runtime.publisher.flush()

        await until_done(f"answering {len(valid)} rec-requests", answer)
