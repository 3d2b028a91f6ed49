"""HTTP views on the worker's web port: recommendations, health, Prometheus metrics."""

from __future__ import annotations

import json
import time

from prometheus_client import generate_latest

from stream.agents.pipeline import MF_MODEL_NAME, MODEL_NAME
from stream.agents.runtime import runtime
from stream.app import app, settings
from stream.metrics import METRICS, REGISTRY

__all__ = ["recommendations", "health", "metrics"]

MAX_K = 100


@app.page("/recommendations/{user_id}")
async def recommendations(web, request, user_id: str):
    """``GET /recommendations/{user_id}?k=10``: the user's current top-k, computed now from Redis."""
    started = time.perf_counter()
    try:
        raw_k = request.query.get("k", str(settings.top_k))
        try:
            k = int(raw_k)
            if not 1 <= k <= MAX_K:
                raise ValueError
        except ValueError:
            return web.json({"error": f"query parameter k is {raw_k!r}: must be an integer 1..{MAX_K}"}, status=400)
        if not 1 <= len(user_id) <= 128:
            return web.json({"error": "user_id must have 1..128 characters"}, status=400)
        segments, tops = await runtime.ingestor.recommend([user_id], k)
        ranked, model = tops[user_id]
        body = json.loads(runtime.ingestor.payload(user_id, segments[user_id], ranked, "request", model=model))
        return web.json(body)
    finally:
        METRICS.serving_seconds.labels("recommendations").observe(time.perf_counter() - started)


@app.page("/health")
async def health(web, request):
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
    return web.json({"status": "ok", "redis": redis_ok, "app_id": settings.app_id, "assigned_partitions": assigned,
                     "ready": assigned > 0 and items_loaded, "serving_model": MF_MODEL_NAME,
                     "cold_start_model": MODEL_NAME,
                     "model": {"n_factors": runtime.mf.k, "params": runtime.mf.model.get_params(),
                               "items": runtime.mf.n_items, "item_rows_loaded": items_loaded,
                               "item_rows_read": runtime.item_factors.read,
                               "item_rows_applied": runtime.item_factors.applied},
                     "model_config": None if config is None else {"path": settings.model_config_path,
                                                                  "model": config["model"],
                                                                  "source": config.get("source")}})


@app.page("/metrics")
async def metrics(web, request):
    # Prometheus' text format 0.0.4; aiohttp wants the charset apart from the content type.
    return web.bytes(generate_latest(REGISTRY), content_type="text/plain; version=0.0.4")
