"""The experiments file: what it accepts, what it refuses (each refusal says where and why)."""

from __future__ import annotations

import pytest

from stream.engine.config import EngineConfig
from stream.experiments.definition import ExperimentError, load, parse, variant_config
from stream.models.hybrid import HybridParams

GOOD = '''
[[experiment]]
name = "blend"
segments = ["commuters", "students"]
salt = "s1"
primary = "conversion_rate"
alpha = 0.01
[[experiment.variant]]
name = "hybrid"
share = 0.6
[[experiment.variant]]
name = "mf-only"
share = 0.4
overrides = { cooccurrence_weight = 0.0, popularity_weight = 0.0, segment_models = false }

[[experiment]]
name = "other"
segments = ["families"]
[[experiment.variant]]
name = "a"
share = 0.5
[[experiment.variant]]
name = "b"
share = 0.5
'''


def test_a_good_file():
    blend, other = parse(GOOD)
    assert (blend.name, blend.segments, blend.salt, blend.primary, blend.alpha) == (
        "blend", ("commuters", "students"), "s1", "conversion_rate", 0.01)
    assert blend.shares == {"hybrid": 0.6, "mf-only": 0.4} and blend.control == "hybrid"
    assert blend.eligible("students") and not blend.eligible("families")
    assert other.salt == "other" and other.primary == "list_ctr"


def test_a_variant_serves_the_engine_config_with_its_overrides():
    blend, _ = parse(GOOD)
    base = EngineConfig(hybrid=HybridParams(mf={"n_factors": 8}))
    control = variant_config(base, blend.variant("hybrid"))
    mf = variant_config(base, blend.variant("mf-only"))
    assert control == base
    assert (mf.hybrid.mf_weight, mf.hybrid.cooccurrence_weight, mf.hybrid.popularity_weight) == (0.3, 0.0, 0.0)
    assert mf.rerank is None and mf.hybrid.mf == base.hybrid.mf


@pytest.mark.parametrize("change, message", [
    (("share = 0.4", "share = 0.3"), "add up to 0.9"),
    (('name = "b"', 'name = "a"'), "variant names must be distinct"),
    (('segments = ["families"]', 'segments = ["students"]'), "both take segment 'students'"),
    (('segments = ["families"]', 'segments = ["*"]'), "both take segment"),
    (("alpha = 0.01", "alpha = 0.7"), "'alpha' is 0.7"),
    (('primary = "conversion_rate"', 'primary = "dwell"'), "'primary' is 'dwell'"),
    (("segment_models = false", "segment_models = 1"), "override segment_models=1: must be a boolean"),
    (("popularity_weight = 0.0", "popularity_weight = -1.0"), "popularity_weight=-1.0: must be a number >= 0"),
    (("popularity_weight = 0.0", "learning_rate = 0.1"), "unknown override 'learning_rate'"),
    (('name = "blend"', 'name = "Blend!"'), "'name' is 'Blend!'"),
    (("[[experiment.variant]]\nname = \"a\"", "[[experiment.variant]]\nname = \"a\"\ncolour = 1"), "unknown keys ['colour']"),
    (("[[experiment]]\nname = \"other\"", "[experiment2]\nname = \"other\""), "unknown top-level keys"),
    (("share = 0.6", "share = "), "not valid TOML"),
])
def test_refusals_name_the_file_the_experiment_and_the_rule(change, message):
    bad = GOOD.replace(*change)
    assert bad != GOOD
    with pytest.raises(ExperimentError) as err:
        parse(bad, "exp.toml")
    assert message in str(err.value) and str(err.value).startswith("exp.toml")


def test_one_variant_is_not_an_experiment():
    text = '[[experiment]]\nname = "x"\n[[experiment.variant]]\nname = "only"\nshare = 1.0\n'
    with pytest.raises(ExperimentError, match="at least two"):
        parse(text, "f")


def test_overrides_the_engine_cannot_serve_are_refused():
    blend, _ = parse(GOOD.replace("segment_models = false", "segment_models = true"))
    with pytest.raises(ExperimentError, match="runs without segment models"):
        variant_config(EngineConfig(rerank=None), blend.variant("mf-only"))
    every_weight_zero = parse(GOOD.replace("cooccurrence_weight = 0.0", "cooccurrence_weight = 0.0, mf_weight = 0.0"))
    with pytest.raises(ExperimentError, match="at least one blend weight"):
        variant_config(EngineConfig(), every_weight_zero[0].variant("mf-only"))


def test_a_tuned_file_as_a_variant(tmp_path):
    import json

    tuned = tmp_path / "tuned.json"
    tuned.write_text(json.dumps({"format": "streamrec-model-config/1", "model": "HybridRanker",
                                 "params": {"mf_weight": 2.0, "cooccurrence_weight": 0.5, "popularity_weight": 0.0,
                                            "mf": {"n_factors": 8}}, "source": {}}))
    path = tmp_path / "e.toml"
    path.write_text(GOOD.replace('overrides = { cooccurrence_weight = 0.0, popularity_weight = 0.0, segment_models = false }',
                                 f'overrides = {{ model_config = "{tuned}" }}'))
    blend, _ = load(path)
    served = variant_config(EngineConfig(hybrid=HybridParams(mf={"n_factors": 8})), blend.variant("mf-only"))
    assert (served.hybrid.mf_weight, served.hybrid.cooccurrence_weight, served.hybrid.popularity_weight) == (2.0, 0.5, 0.0)
    with pytest.raises(ExperimentError, match="MF factors"):
        variant_config(EngineConfig(hybrid=HybridParams(mf={"n_factors": 16})), blend.variant("mf-only"))


def test_a_missing_file():
    with pytest.raises(ExperimentError, match="cannot read the experiments file"):
        load("/nonexistent/experiments.toml")
