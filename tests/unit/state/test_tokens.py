"""Tokens (stream/state/tokens.py): remembered tokens are the ones computed afresh, and an erased
user's are forgotten."""

from __future__ import annotations

from stream.state.tokens import Tokens

KEY = b"k" * 32


def test_remembered_tokens_equal_fresh_ones_and_an_erased_users_are_forgotten():
    tokens = Tokens(KEY)
    ids = [f"ml100k-u{n}-i{n}" for n in range(50)]
    first = tokens.events(ids[:30])
    again = tokens.events(ids)  # 30 remembered, 20 new
    assert again[:30] == first and again == Tokens(KEY).events(ids) and len(set(again)) == 50
    assert tokens.user("alice") == Tokens(KEY).user("alice") != tokens.user("bob")
    tokens.forget("alice")
    assert "alice" not in tokens._users and not tokens._events
    assert tokens.user("alice") == Tokens(KEY).user("alice")


def test_a_batch_that_fills_the_remembered_tokens_gets_every_token(monkeypatch):
    """The remembered tokens are forgotten all at once when full; a batch that fills them midway
    still gets a token for each of its ids, remembered ones included (a worker met this once per
    100,000 events: the batch failed with a KeyError and went event by event)."""
    monkeypatch.setattr("stream.state.tokens._REMEMBERED", 10)
    tokens = Tokens(KEY)
    ids = [f"e{n}" for n in range(16)]
    tokens.events(ids[:8])
    got = tokens.events(ids[:8] + ids[8:] + ids[:2])  # 8 remembered, 8 new: full after 2 of them
    assert got == Tokens(KEY).events(ids + ids[:2])
    assert len(tokens._events) <= 10
