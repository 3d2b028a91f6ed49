"""The worker's HTTP bearer token (STREAMREC_HTTP_TOKEN), checked in constant time.

Both the presented token and the expected one are hashed with SHA-256 before
``hmac.compare_digest`` compares them, so the time taken says nothing about the token, not even
its length. An empty token means no check.

Examples
--------
>>> token = BearerToken("s3cret-token")
>>> token.problem("Bearer s3cret-token") is None
True
>>> token.problem(None)
'this endpoint needs a bearer token: send Authorization: Bearer <STREAMREC_HTTP_TOKEN>'
>>> token.problem("Bearer guess")
'the bearer token is wrong'
>>> BearerToken("").problem(None) is None
True
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["BearerToken"]


class BearerToken:
    """The token a request must present as ``Authorization: Bearer <token>``."""

    def __init__(self, token: str):
        self._digest = hashlib.sha256(token.encode()).digest() if token else None

    @classmethod
    def from_settings(cls, settings) -> "BearerToken":
        return cls(settings.http_token.get_secret_value())

    @property
    def required(self) -> bool:
        return self._digest is not None

    def problem(self, authorization: str | None) -> str | None:
        """Why a request with this ``Authorization`` header is refused, or None when it may pass."""
        if self._digest is None:
            return None
        scheme, _, presented = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return "this endpoint needs a bearer token: send Authorization: Bearer <STREAMREC_HTTP_TOKEN>"
        if not hmac.compare_digest(hashlib.sha256(presented.strip().encode()).digest(), self._digest):
            return "the bearer token is wrong"
        return None

    @staticmethod
    def challenge(problem: str) -> str:
        """The ``WWW-Authenticate`` header of a 401 (RFC 6750: ``invalid_token`` for a wrong token)."""
        if problem == "the bearer token is wrong":
            return 'Bearer realm="streamrec", error="invalid_token"'
        return 'Bearer realm="streamrec"'
