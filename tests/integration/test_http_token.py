"""STREAMREC_HTTP_TOKEN on a real worker: /recommendations and /items answer 401 with a JSON error
and ``WWW-Authenticate: Bearer`` without the right token, and as before with it; /health and
/metrics stay open (closing them is checked in test_pseudonyms.py's hardened worker); Faust's own
/router and /table views are off. The consumer SDK and CLI send the token."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from pydantic import SecretStr

from producers.sdk import EventProducer
from tests.conftest import ROOT
from tests.helpers import applied, wait_for
from tests.secure import new_secret

pytestmark = pytest.mark.integration


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_the_token_guards_recommendations_and_items(isolated, worker_factory, tmp_path):
    from consumers.sdk import served_recommendations, similar_items

    token = new_secret("token")
    settings = isolated.model_copy(update={"http_token": SecretStr(token)})
    worker = worker_factory(settings, name="token").start()
    with EventProducer(settings) as producer:
        for n, (user, item) in enumerate([("ann", "book"), ("ann", "film"), ("ben", "book"), ("ben", "film"),
                                          ("cid", "book"), ("cid", "song")]):
            producer.send("click", {"event_id": f"t{n}", "user_id": user, "item_id": item, "ts": 10.0 + n,
                                    "schema": "v1"})
    wait_for(lambda: applied(settings) >= 6, 60, "the clicks applied")

    paths = ["/recommendations/ann?k=3", "/items/book/similar?k=3"]
    for path in paths:
        for headers in ({}, {"Authorization": "Bearer wrong-" + token}, {"Authorization": f"Basic {token}"},
                        {"Authorization": token}):
            status, answer_headers, body = _get(worker.url + path, headers)
            assert status == 401, (path, headers, status)
            assert answer_headers["Content-Type"].startswith("application/json")
            assert answer_headers["WWW-Authenticate"].startswith('Bearer realm="streamrec"')
            assert "bearer token" in json.loads(body)["error"]
            assert token not in body.decode()
        status, _, body = _get(worker.url + path, {"Authorization": f"Bearer {token}"})
        assert status == 200, (path, body)
    assert _get(worker.url + paths[0], {"Authorization": "Bearer nope"})[1]["WWW-Authenticate"].endswith(
        'error="invalid_token"')
    # Open by default; Faust's own views are off.
    for path in ("/health", "/metrics"):
        assert _get(worker.url + path)[0] == 200
    for path in ("/router/", "/table/"):
        assert _get(worker.url + path, {"Authorization": f"Bearer {token}"})[0] == 404

    # The consumer SDK and CLI send the token; without it they fail with one clear line.
    assert served_recommendations("ann", 3, url=worker.url, settings=settings)["user_id"] == "ann"
    assert similar_items("book", 3, url=worker.url, settings=settings)["item_id"] == "book"
    no_token = settings.model_copy(update={"http_token": SecretStr("")})
    with pytest.raises(PermissionError, match="401"):
        similar_items("book", 3, url=worker.url, settings=no_token)
    for env, ok in ((settings, True), (no_token, False)):
        out = subprocess.run([sys.executable, "-m", "consumers.cli", "similar", "--item", "book", "--url", worker.url],
                             env=env.as_env(), cwd=ROOT, capture_output=True, text=True, timeout=60)
        if ok:
            assert out.returncode == 0 and json.loads(out.stdout)["item_id"] == "book", out.stderr
        else:
            assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
            assert "401" in out.stderr and "Traceback" not in out.stderr
    assert token not in worker.log_path.read_text()
