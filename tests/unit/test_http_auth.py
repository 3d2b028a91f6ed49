"""The HTTP bearer token: what passes, what is refused and why, compared in constant time."""

from __future__ import annotations

import hmac

import pytest

from stream.config import Settings
from stream.http_auth import BearerToken


@pytest.mark.parametrize("header, passes", [
    ("Bearer s3cret", True), ("bearer s3cret", True), ("  Bearer   s3cret  ", True),
    (None, False), ("", False), ("Bearer", False), ("Bearer ", False), ("s3cret", False), ("Basic s3cret", False),
    ("Bearer s3cret2", False), ("Bearer s3cre", False), ("Bearer S3CRET", False),
])
def test_only_the_right_bearer_token_passes(header, passes):
    assert (BearerToken("s3cret").problem(header) is None) is passes


def test_no_token_set_means_no_check():
    token = BearerToken.from_settings(Settings())
    assert not token.required and token.problem(None) is None


def test_the_comparison_is_constant_time_over_digests(monkeypatch):
    """hmac.compare_digest, over SHA-256 digests of equal length (the token's length is not
    revealed either)."""
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    token = BearerToken("s3cret")
    assert token.problem("Bearer s3cret") is None and token.problem("Bearer a-much-longer-guess") is not None
    assert calls == [(32, 32), (32, 32)]


def test_refusals_say_what_to_send_and_never_echo_the_token():
    token = BearerToken("s3cret")
    assert "Authorization: Bearer" in token.problem(None)
    assert "s3cret" not in token.problem("Bearer guess-42") and "guess-42" not in token.problem("Bearer guess-42")
    assert token.challenge(token.problem("Bearer wrong")).endswith('error="invalid_token"')
    assert token.challenge(token.problem(None)) == 'Bearer realm="streamrec"'


def test_clients_send_the_token_from_the_settings():
    assert Settings(http_token="abc").http_headers() == {"Authorization": "Bearer abc"}
    assert Settings().http_headers() == {}
