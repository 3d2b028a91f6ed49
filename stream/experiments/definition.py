"""Experiments as a file: what each one tests, on which segments, with which variants.

A TOML file (``STREAMREC_EXPERIMENTS_PATH``) lists the experiments::

    [[experiment]]
    name = "hybrid-vs-mf"          # [a-z0-9_-], 1..64
    segments = ["all"]             # the segments whose users are eligible ("*": every segment)
    salt = "2026-12"               # optional (default: the name): a new salt is a new draw
    primary = "list_ctr"           # optional: the metric the sequential test decides on
    alpha = 0.05                   # optional

    [[experiment.variant]]         # the first variant is the control
    name = "hybrid"
    share = 0.5

    [[experiment.variant]]
    name = "mf-only"
    share = 0.5
    overrides = { cooccurrence_weight = 0.0, popularity_weight = 0.0 }

A variant is the engine's configuration with *serving* overrides (:data:`OVERRIDES`): every
variant learns from every user's events, so the models are shared and only what is served
differs. The segments of two experiments must not overlap: a user is in at most one experiment.

Examples
--------
>>> text = '''
... [[experiment]]
... name = "div"
... segments = ["*"]
... [[experiment.variant]]
... name = "control"
... share = 0.5
... [[experiment.variant]]
... name = "mmr"
... share = 0.5
... overrides = { diversity = 0.3 }
... '''
>>> exps = parse(text, "x.toml")
>>> exps[0].name, [v.name for v in exps[0].variants], exps[0].control
('div', ['control', 'mmr'], 'control')
>>> try:
...     parse(text.replace("diversity", "learning_rate"), "x.toml")
... except ExperimentError as exc:
...     print(exc)  # doctest: +ELLIPSIS
x.toml: experiment 'div', variant 'mmr': unknown override 'learning_rate' (overrides change what is served: ...)
"""

from __future__ import annotations

import math
import pathlib
import re
import tomllib
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["Experiment", "Variant", "ExperimentError", "OVERRIDES", "parse", "load", "variant_config"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

#: The serving settings a variant may override, and what each must be.
OVERRIDES: dict[str, str] = {
    "mf_weight": "a number >= 0 (the blend's MF weight)",
    "cooccurrence_weight": "a number >= 0 (the blend's item-kNN weight)",
    "popularity_weight": "a number >= 0 (the blend's popularity weight)",
    "segment_models": "a boolean (false: the blend is served without the segment re-rankers)",
    "diversity": "a number in [0, 1] (MMR's lambda; 0: pure relevance)",
    "model_config": "the path of a model configuration file (`streamrec tune`'s): its blend weights are served",
}



class ExperimentError(ValueError):
    """An experiments file breaks a rule; the message names the file, the experiment, the field."""


@dataclass(frozen=True)
class Variant:
    name: str
    share: float
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Experiment:
    """One experiment (see the module docstring)."""

    name: str
    segments: tuple[str, ...]
    variants: tuple[Variant, ...]
    salt: str = ""
    primary: str = "list_ctr"
    alpha: float = 0.05

    @property
    def control(self) -> str:
        return self.variants[0].name

    @property
    def shares(self) -> dict[str, float]:
        return {v.name: v.share for v in self.variants}

    def eligible(self, segment: str) -> bool:
        return "*" in self.segments or segment in self.segments

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"experiment {self.name!r} has no variant {name!r}")


def load(path: str | pathlib.Path) -> list[Experiment]:
    """The experiments of a TOML file, checked (:class:`ExperimentError` says what is wrong)."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExperimentError(f"{path}: cannot read the experiments file: {exc.strerror or exc}") from None
    return parse(text, str(path))


def parse(text: str, where: str = "<experiments>") -> list[Experiment]:
    """The experiments of a TOML document (``where`` names it in errors)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentError(f"{where}: not valid TOML: {exc}") from None
    unknown = set(doc) - {"experiment"}
    if unknown:
        raise ExperimentError(f"{where}: unknown top-level keys {sorted(unknown)} (expected [[experiment]] tables)")
    raw = doc.get("experiment", [])
    if not isinstance(raw, list):
        raise ExperimentError(f"{where}: 'experiment' must be an array of tables ([[experiment]])")
    out = [_experiment(e, f"{where}: experiment #{n + 1}", where) for n, e in enumerate(raw)]
    names: set[str] = set()
    owner: dict[str, str] = {}
    for e in out:
        if e.name in names:
            raise ExperimentError(f"{where}: experiment {e.name!r} is defined twice")
        names.add(e.name)
        for seg in e.segments:
            for other_seg, other in owner.items():
                if seg == other_seg or "*" in (seg, other_seg):
                    raise ExperimentError(f"{where}: experiments {other!r} and {e.name!r} both take segment "
                                          f"{seg!r}: a user can be in one experiment only")
            owner[seg] = e.name
    return out


def _experiment(e: Any, at: str, where: str) -> Experiment:
    if not isinstance(e, dict):
        raise ExperimentError(f"{at}: must be a table")
    unknown = set(e) - {"name", "segments", "salt", "primary", "alpha", "variant"}
    if unknown:
        raise ExperimentError(f"{at}: unknown keys {sorted(unknown)}")
    name = e.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ExperimentError(f"{at}: 'name' is {name!r}: must be 1..64 of [a-z0-9_-], starting with a letter or digit")
    at = f"{where}: experiment {name!r}"
    segments = e.get("segments", ["*"])
    if not isinstance(segments, list) or not segments or not all(isinstance(s, str) and s for s in segments):
        raise ExperimentError(f"{at}: 'segments' must be a non-empty list of segment names (or [\"*\"])")
    salt = e.get("salt", name)
    if not isinstance(salt, str) or not salt:
        raise ExperimentError(f"{at}: 'salt' must be a non-empty string")
    primary = e.get("primary", "list_ctr")
    from stream.experiments.stats import METRICS  # the metrics the sequential test can decide on

    if primary not in METRICS:
        raise ExperimentError(f"{at}: 'primary' is {primary!r}: must be one of {list(METRICS)}")
    alpha = e.get("alpha", 0.05)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 0.5:
        raise ExperimentError(f"{at}: 'alpha' is {alpha!r}: must be a number in (0, 0.5)")
    raw = e.get("variant", [])
    if not isinstance(raw, list) or len(raw) < 2:
        raise ExperimentError(f"{at}: needs at least two [[experiment.variant]] tables (the first is the control)")
    variants = tuple(_variant(v, at, n) for n, v in enumerate(raw))
    if len({v.name for v in variants}) != len(variants):
        raise ExperimentError(f"{at}: variant names must be distinct, got {[v.name for v in variants]}")
    total = sum(v.share for v in variants)
    if not math.isclose(total, 1.0, abs_tol=1e-9):
        raise ExperimentError(f"{at}: the variants' shares add up to {total:g}: they must add up to 1")
    return Experiment(name, tuple(segments), variants, salt, primary, float(alpha))


def _variant(v: Any, at: str, n: int) -> Variant:
    if not isinstance(v, dict):
        raise ExperimentError(f"{at}: variant #{n + 1} must be a table")
    unknown = set(v) - {"name", "share", "overrides"}
    if unknown:
        raise ExperimentError(f"{at}: variant #{n + 1}: unknown keys {sorted(unknown)}")
    name = v.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ExperimentError(f"{at}: variant #{n + 1}: 'name' is {name!r}: must be 1..64 of [a-z0-9_-]")
    share = v.get("share")
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share < 1:
        raise ExperimentError(f"{at}, variant {name!r}: 'share' is {share!r}: must be a number in (0, 1)")
    overrides = v.get("overrides", {})
    if not isinstance(overrides, dict):
        raise ExperimentError(f"{at}, variant {name!r}: 'overrides' must be a table")
    for key, value in overrides.items():
        _check_override(key, value, f"{at}, variant {name!r}")
    return Variant(name, float(share), dict(overrides))


def _check_override(key: str, value: Any, at: str) -> None:
    if key not in OVERRIDES:
        raise ExperimentError(f"{at}: unknown override {key!r} (overrides change what is served: "
                              f"{', '.join(sorted(OVERRIDES))})")
    number = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    ok = {
        "segment_models": isinstance(value, bool),
        "model_config": isinstance(value, str) and bool(value),
        "diversity": number and 0 <= value <= 1,
    }.get(key, number and value >= 0)
    if not ok:
        raise ExperimentError(f"{at}: override {key}={value!r}: must be {OVERRIDES[key]}")


def variant_config(base, variant: Variant, where: str = ""):
    """The :class:`~stream.engine.config.EngineConfig` a variant serves: ``base`` with its overrides.

    Raises :class:`ExperimentError` when the overrides cannot be served by this engine (segment
    models asked for where the engine has none, a model configuration with other MF factors).
    """
    at = f"{where}variant {variant.name!r}"
    o = variant.overrides
    config = base
    hybrid = base.hybrid
    if "model_config" in o:
        from stream.models.config_io import hybrid_params, load_model_config

        try:
            tuned = load_model_config(o["model_config"])
        except (OSError, ValueError) as exc:
            raise ExperimentError(f"{at}: model_config: {exc}") from None
        h = hybrid_params(tuned)
        if h.mf_params.get("n_factors") != hybrid.mf_params.get("n_factors") and "n_factors" in (h.mf or {}):
            raise ExperimentError(f"{at}: model_config {o['model_config']!r} has {h.mf_params['n_factors']} MF "
                                  f"factors, the engine {hybrid.mf_params['n_factors']}: a variant serves the shared model")
        hybrid = replace(hybrid, mf_weight=h.mf_weight, cooccurrence_weight=h.cooccurrence_weight,
                         popularity_weight=h.popularity_weight, normalise=h.normalise)
    weights = {k: float(o[k]) for k in ("mf_weight", "cooccurrence_weight", "popularity_weight") if k in o}
    if weights:
        try:
            hybrid = replace(hybrid, **weights)
        except ValueError as exc:
            raise ExperimentError(f"{at}: {exc}") from None
    config = replace(config, hybrid=hybrid)
    if "segment_models" in o:
        if o["segment_models"] and base.rerank is None:
            raise ExperimentError(f"{at}: segment_models = true, but the engine runs without segment models "
                                  "(STREAMREC_SEGMENT_MODELS=false): they would not learn")
        if not o["segment_models"]:
            config = replace(config, rerank=None)
    if "diversity" in o:
        config = replace(config, diversity=float(o["diversity"]))
    return config
