"""For every test and doctest (tests/, stream/, producers/, consumers/): the default namespace.

A developer's shell may export the names of a run of their own (STREAMREC_TOPIC_PREFIX and the
like). Tests make their own names (tests/conftest.py, ``isolated``) and doctests show the
defaults, so those variables are dropped for each test; the stack's ports and directories,
which say where the services run, are kept.
"""

from __future__ import annotations

import pytest

NAMESPACE = ("STREAMREC_APP_ID", "STREAMREC_TOPIC_PREFIX", "STREAMREC_REDIS_PREFIX", "STREAMREC_WEB_PORT",
             "STREAMREC_DATADIR", "STREAMREC_EXPERIMENTS_PATH")


@pytest.fixture(autouse=True)
def _default_namespace(monkeypatch):
    for name in NAMESPACE:
        monkeypatch.delenv(name, raising=False)
