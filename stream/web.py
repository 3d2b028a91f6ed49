"""HTTP views on the worker's web port: recommendations, similar items, health, Prometheus metrics.

With STREAMREC_HTTP_TOKEN set, /recommendations and /items ask for ``Authorization: Bearer
<token>`` (stream/http_auth.py); /health and /metrics too when STREAMREC_HTTP_OPEN_HEALTH_METRICS
is false. Without the right token: 401, a JSON error and ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

import time

from prometheus_client import generate_latest

from stream.agents.runtime import runtime
from stream.app import app, settings
from stream.engine.config import MODEL_NAMES
from stream.engine.push import message
from stream.http_auth import BearerToken
from stream.metrics import METRICS, REGISTRY

__all__ = ["recommendations", "similar_items", "health", "metrics"]

MAX_K = 100

_TOKEN = BearerToken.from_settings(settings)


def _refused(web, request, *, always: bool):
    """The 401 answer when the request lacks the right token, else None. ``always``: the view is
    protected whenever a token is set; otherwise only when /health and /metrics are closed."""
    if not always and settings.http_open_health_metrics:
        return None
    problem = _TOKEN.problem(request.headers.get("Authorization"))
    if problem is None:
        return None
    return web.json({"error": problem}, status=401, headers={"WWW-Authenticate": _TOKEN.challenge(problem)})


def _k(web, request):
    """The ``k`` query parameter (default STREAMREC_TOP_K), or an error answer."""
    raw = request.query.get("k", str(settings.top_k))
    try:
        k = int(raw)
        if not 1 <= k <= MAX_K:
            raise ValueError
    except ValueError:
        return None, web.json({"error": f"query parameter k is {raw!r}: must be an integer 1..{MAX_K}"}, status=400)
    return k, None


@app.page("/recommendations/{user_id}")
async def recommendations(web, request, user_id: str):
    """``GET /recommendations/{user_id}?k=10``: the user's list as it would be served now, each
    item with its reason."""
    refused = _refused(web, request, always=True)
    if refused is not None:
        return refused
    started = time.perf_counter()
    try:
        k, error = _k(web, request)
        if error is not None:
            return error
        if not 1 <= len(user_id) <= 128:
            return web.json({"error": "user_id must have 1..128 characters"}, status=400)
        segment, ranked = (await runtime.engine.recommend([user_id], k))[user_id]
        body = message(user_id, segment, ranked, "request")
        await runtime.pusher.record([body])
        return web.json(body)
    finally:
        METRICS.serving_seconds.labels("recommendations").observe(time.perf_counter() - started)


@app.page("/items/{item_id}/similar")
async def similar_items(web, request, item_id: str):
    """``GET /items/{item_id}/similar?k=10``: the items most similar to one, from its co-occurrence
    row (``"source": "cooccurrence"``), or, while it has none, the closest MF rows (``"mf"``)."""
    refused = _refused(web, request, always=True)
    if refused is not None:
        return refused
    started = time.perf_counter()
    try:
        k, error = _k(web, request)
        if error is not None:
            return error
        if not 1 <= len(item_id) <= 128:
            return web.json({"error": "item_id must have 1..128 characters"}, status=400)
        similar, source = runtime.engine.similar(item_id, k)
        if source == "unknown":
            return web.json({"error": f"item {item_id!r} is not known to this worker", "item_id": item_id},
                            status=404)
        return web.json({"schema": "v1", "item_id": item_id, "source": source,
                         "items": [{"item_id": i, "score": round(s, 6), "rank": r + 1}
                                   for r, (i, s) in enumerate(similar)]})
    finally:
        METRICS.serving_seconds.labels("similar").observe(time.perf_counter() - started)


@app.page("/health")
async def health(web, request):
    refused = _refused(web, request, always=False)
    if refused is not None:
        return refused
    try:
        redis_ok = bool(await runtime.redis.ping())
    except Exception as exc:  # report, don't raise: a health check answers
        return web.json({"status": "unhealthy", "redis": f"{type(exc).__name__}"}, status=503)
    try:
        assigned = len(app.consumer.assignment())
    except Exception:  # the consumer is not started yet
        assigned = 0
    # "ready": the worker owns partitions and has read the item rows; tests and the demo wait for it.
    config = runtime.model_config
    items_loaded = runtime.items_ready.is_set()
    return web.json({
        "status": "ok", "redis": redis_ok, "app_id": settings.app_id, "assigned_partitions": assigned,
        "owned_item_partitions": runtime.owner.partitions,
        "ready": assigned > 0 and items_loaded,
        "serving": {"models": MODEL_NAMES, "engine": runtime.config.describe()},
        "items": {"known": runtime.table.n_items, "rows_loaded": items_loaded, "rows_read": runtime.copy.read,
                  "rows_own_passed": runtime.copy.own, "rows_applied": runtime.copy.applied, "owner_updates_applied": runtime.owner.applied,
                  "owner_updates_dropped": runtime.owner.dropped, "outbox_resent": runtime.bus.resent},
        "model_config": None if config is None else {"path": settings.model_config_path, "model": config["model"],
                                                     "source": config.get("source")},
    })


@app.page("/metrics")
async def metrics(web, request):
    refused = _refused(web, request, always=False)
    if refused is not None:
        return refused
    # Prometheus' text format 0.0.4; aiohttp wants the charset apart from the content type.
    return web.bytes(generate_latest(REGISTRY), content_type="text/plain; version=0.0.4")
