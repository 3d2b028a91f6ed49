"""What streamrec's shims over Faust internals are pinned to: one faust-streaming release, and
the source of every function each shim replaces or relies on (docs/ARCHITECTURE.md, "Faust's own
path"). A shim whose pins do not hold turns itself off, with a warning, and its unit test fails.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from pathlib import Path
from typing import Any, Mapping, Optional

import faust

__all__ = ["PINNED_VERSION", "source_digest", "why_not"]

#: The faust-streaming release the shims were written against (pyproject.toml pins it).
PINNED_VERSION = "0.15.3"


def source_digest(name: str) -> str:
    """SHA-256 of the source of ``module:Class.attribute``, or of a file shipped in a package
    (``file:package/relative/path``: Cython sources, whose compiled classes have no source).

    >>> len(source_digest("faust.transport.consumer:Consumer._drain_messages"))
    64
    >>> len(source_digest("file:faust/_cython/streams.pyx"))
    64
    """
    if name.startswith("file:"):
        package, _, rest = name[len("file:"):].partition("/")
        path = Path(importlib.import_module(package).__file__).parent / rest
        return hashlib.sha256(path.read_bytes()).hexdigest()
    module, _, path_in_module = name.partition(":")
    obj: Any = importlib.import_module(module)
    for part in path_in_module.split("."):
        obj = getattr(obj, part)
    obj = getattr(obj, "fun", obj)  # a mode ``@Service.task`` wraps its function
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()


def why_not(shim: str, sources: Mapping[str, str]) -> Optional[str]:
    """None when the installed Faust is the release ``shim`` was written for and every source in
    ``sources`` (name -> SHA-256) is unchanged; else why not, in words.

    >>> why_not("the lean drain", {}) is None
    True
    """
    if faust.__version__ != PINNED_VERSION:
        return f"faust-streaming is {faust.__version__}, {shim} was written for {PINNED_VERSION}"
    changed = []
    for name, digest in sources.items():
        try:
            if source_digest(name) != digest:
                changed.append(name)
        except (LookupError, AttributeError, ImportError, OSError, TypeError):
            changed.append(name)
    if changed:
        return f"the source of {', '.join(changed)} is not the one {shim} was written for"
    return None
