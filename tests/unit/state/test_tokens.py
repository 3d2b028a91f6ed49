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
