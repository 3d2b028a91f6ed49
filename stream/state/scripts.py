"""The one registry of the Lua scripts Redis runs (stream/state/lua/*.lua).

Each script is a file with its KEYS/ARGV documented at its top; this module reads them once
and registers them with redis-py, whose script objects run EVALSHA and load the script again
after a NOSCRIPT (a restarted Redis without its script cache).

    load            what a batch needs, in one call
    commit          a batch's writes, after checking what they were computed from
    owner_commit    an item owner's applied update ids and the rows they changed
    segment_scores  items' scores in segments' popularity sets
    erase           a user's keys deleted and their erasure marker set
    profile         a profile stored unless its user was erased after it
    save_lists      the lists just pushed, for users who still have a record
    assign          users assigned to experiment variants, each at most once
    attribute       what events added to the lists they name and to their users' experiment counters
    served_lists    served lists' records, kept for the attribution window

>>> sorted(SCRIPTS)
['assign', 'attribute', 'commit', 'erase', 'load', 'owner_commit', 'profile', 'save_lists', 'segment_scores', 'served_lists']
>>> "redis.call('HMGET'" in source("load")
True
"""

from __future__ import annotations

from functools import lru_cache, partial
from importlib import resources

__all__ = ["SCRIPTS", "source", "Scripts"]

SCRIPTS = ("load", "commit", "owner_commit", "segment_scores", "erase", "profile", "save_lists", "assign",
           "attribute", "served_lists")


@lru_cache(maxsize=None)
def source(name: str) -> str:
    """A script's Lua source."""
    if name not in SCRIPTS:
        raise ValueError(f"no Lua script {name!r} (one of {SCRIPTS})")
    return resources.files("stream.state").joinpath("lua").joinpath(f"{name}.lua").read_text(encoding="utf-8")


class Scripts:
    """The scripts registered on one (async) redis-py client: ``scripts.load(args=[...])``.

    Every call names ``route`` as its one key (:attr:`stream.state.keys.Keys.slot`): the scripts
    build their keys from their arguments, and a Redis Cluster client sends a call to the node of
    its keys' slot (without a key, to any node, which refuses keys it does not hold)."""

    def __init__(self, redis, route: str) -> None:
        for name in SCRIPTS:
            setattr(self, name, partial(redis.register_script(source(name)), [route]))
