"""`streamrec evaluate --segments` and `streamrec tune --space rerank`, on the engine, over small
simulator streams (a few thousand events: seconds each)."""

import argparse
import io

import numpy as np
import pytest

from stream.engine.offline import EngineRanker
from stream.evaluation.cli import register
from stream.evaluation.prequential import fixed_batches, prequential
from stream.evaluation.segments import (SegmentCounts, SegmentReport, evaluate_segments, format_segment_tables,
                                        segment_setup)
from stream.evaluation.streams import load_stream
from stream.evaluation.tune_segments import choose, paired_gain, tune_segments
from stream.models.config_io import load_model_config
from stream.signals import is_trial, marks_seen

TRUE_SEGMENTS = {"segment:commuters", "segment:night-owls", "segment:weekenders", "segment:students"}


@pytest.fixture(autouse=True)
def every_trial(monkeypatch):
    """The segment evaluation runs what a worker with the settings serves; these tests count and
    pair every trial (STREAMREC_TRIAL_SHARE=1), the power their thresholds were set with."""
    monkeypatch.setenv("STREAMREC_TRIAL_SHARE", "1")


@pytest.fixture(scope="module")
def sim():
    return load_stream("simulator", sim_events=3000)


def _run(argv):
    parser = argparse.ArgumentParser(prog="streamrec")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args, None)


def _trials(events) -> int:
    """The protocol's trials, counted from the events alone (stream.signals' rule)."""
    count, seen, n = {}, {}, 0
    for ev in events:
        n += is_trial(ev, count.get(ev.user_id, 0), seen.setdefault(ev.user_id, set()))
        count[ev.user_id] = count.get(ev.user_id, 0) + 1
        if marks_seen(ev):
            seen[ev.user_id].add(ev.item_id)
    return n


def _quiet(stream, spec, **kw):
    return evaluate_segments(stream, spec, out=io.StringIO(), progress=None, **kw)


def test_profile_segments_count_every_trial_once_in_its_true_segment(sim):
    report = _quiet(sim, "segment")
    assert set(report.segments) == TRUE_SEGMENTS  # every simulator user has a profile: no "all"
    assert report.overall.trials == _trials(sim.events()) > 500
    assert sum(c.trials for c in report.segments.values()) == report.overall.trials
    for name in ("global", "shared", "segment", "served"):
        assert sum(c.hits[name] for c in report.segments.values()) == report.overall.hits[name]
    assert report.events == 3000


def test_served_hits_are_what_the_protocol_scores_for_the_same_engine(sim):
    # the served column must be the engine's own prequential figure, not a second model's
    report = _quiet(sim, "segment", batch_size=50)
    ranker = EngineRanker(segment_setup(sim, "segment").config)
    ranker.prepare(sim)
    events = sim.events()
    metrics, _ = prequential(events, {"m": ranker}, fixed_batches(len(events), 50), progress=None)
    assert (metrics["m"].trials, metrics["m"].hits) == (report.overall.trials, report.overall.hits["served"])


def _outcomes(stream, spec):
    ranker = EngineRanker(segment_setup(stream, spec).config)
    ranker.prepare(stream)
    events, out = stream.events(), []
    for batch in fixed_batches(len(events), 100):
        ranker.step([events[i] for i in batch])
        out += ranker.last.trials
    return out


def test_other_segments_score_the_same_trials_with_the_same_blend(sim):
    # what pairs runs (here and in tune --space rerank): the trials are the same events, and the
    # blend's hits on warm trials do not depend on the segments (only cold lists, segment
    # popularity, and the re-rankers' do)
    by_segment, one = _outcomes(sim, "segment"), _outcomes(sim, "none")
    assert [t.event.event_id for t in by_segment] == [t.event.event_id for t in one]
    warm = [(a, b) for a, b in zip(by_segment, one) if a.seg_hit is not None and b.seg_hit is not None]
    assert len(warm) > 300
    assert [a.glob_hit for a, _ in warm] == [b.glob_hit for _, b in warm]
    assert [a.seg_hit for a, _ in warm] != [b.seg_hit for _, b in warm]  # the segment layers do differ
    assert {t.segment for t in one} == {"all"}


def test_the_table_prints_every_ranking_and_every_segment(sim):
    out = io.StringIO()
    evaluate_segments(sim, "segment", out=out, progress=None, rerank={"n_candidates": 30})
    text = out.getvalue()
    assert "| global-only (the blend) |" in text and "segment-tuned (served, guarded)" in text
    for name in TRUE_SEGMENTS:
        assert f"| {name} |" in text
    assert "segments worse beyond noise:" in text


def test_rerank_overrides_reach_the_engine_and_unknown_ones_are_refused(sim):
    assert segment_setup(sim, "segment", rerank={"n_candidates": 30}).config.rerank.n_candidates == 30
    with pytest.raises(ValueError, match=r"unknown re-ranker parameters \['n_candidate'\]"):
        segment_setup(sim, "segment", rerank={"n_candidate": 30})


def test_a_guard_that_falls_back_at_the_first_loss_switches_and_is_counted(sim):
    # window 1, no margin, no noise band: any trial where the segment misses and the blend hits switches
    report = _quiet(sim, "segment", rerank={"guard_window": 1, "guard_min_trials": 1, "guard_margin": 0.0,
                                            "guard_z": 0.0})
    assert report.switches and {s["to"] for s in report.switches} == {"global", "segment"}
    assert {s["segment"] for s in report.switches} <= TRUE_SEGMENTS
    assert "guard switches: 0" not in format_segment_tables(report)


def test_behaviour_segments_are_named_moved_and_scored_against_the_truth():
    # the clusterer steps once per user and batch: a longer stream than the other tests' for a move
    out = io.StringIO()
    report = evaluate_segments(load_stream("simulator", sim_events=6000), "behaviour", out=out, progress=None)
    behaviour = [s for s in report.segments if s.startswith("behaviour-")]
    assert behaviour and set(report.segments) <= {"all", *behaviour}
    assert set(behaviour) <= set(report.labels) and report.moves > 0
    assert 0.25 <= report.purity <= 1.0  # four true segments: the most common one is at least a quarter
    text = out.getvalue()
    assert "dwell" in text and "purity" in text and "moves between behaviour segments" in text


def test_unknown_attributes_are_named_with_those_the_profiles_have(sim):
    with pytest.raises(ValueError, match=r"no attribute \['zodiac'\]; they have \['age_band', 'country', 'segment'\]"):
        _run(["evaluate", "--dataset", "simulator", "--sim-events", "500", "--segments", "segment,zodiac",
              "--progress-every", "0"])


def test_evaluate_segments_from_the_command_line(capsys):
    assert _run(["evaluate", "--dataset", "simulator", "--sim-events", "1500", "--segments", "none",
                 "--progress-every", "0"]) == 0
    assert "| all |" in capsys.readouterr().out


def test_a_segment_worse_beyond_noise_is_flagged():
    worse, fine = SegmentCounts(), SegmentCounts()
    for n in range(200):
        worse.add({"served": n % 10 == 0, "global": n % 4 == 0, "segment": False, "shared": False})
        fine.add({"served": n % 4 == 0, "global": n % 4 == 0, "segment": False, "shared": False})
    report = SegmentReport(10, fine, {"a": worse, "b": fine}, [{"segment": "a"}], 200, 1.0)
    assert report.worse_beyond_noise() == ["a"]
    text = format_segment_tables(report)
    assert "| a | 200 | 0.2500 | 0.1000 | -0.1500 worse |" in text and "segments worse beyond noise: a (of 2)" in text
    assert text.count("| 1 |") == 1  # a's one guard switch, b's none


def test_paired_gain_and_the_min_z_rule():
    assert paired_gain(np.array([1, 0, 1, 0]), np.array([1, 0, 1, 0])) == (0.0, 0.0)
    with pytest.raises(ValueError, match="same trials"):
        paired_gain(np.array([1, 0]), np.array([1]))
    defaults = {"s": np.array([0, 1] * 50, dtype=np.int8)}
    small = {"s": defaults["s"].copy()}
    small["s"][0] = 1  # +0.01, one trial: within noise
    large = {"s": np.ones(100, dtype=np.int8)}  # +0.5 on half the trials
    assert choose([defaults, small])["s"]["trial"] == 0
    figures = choose([defaults, small, large])["s"]
    assert figures["trial"] == 2 and figures["tuned"] == 1.0 and figures["best_gain"] == 0.5


def test_tune_rerank_writes_a_per_segment_configuration_that_evaluate_runs(sim, tmp_path, capsys):
    out = tmp_path / "segmented.json"
    prefix = sim.limit(1500)
    params, report = tune_segments(prefix, "segment", n_trials=2, output=str(out), progress=None, min_z=0.0)
    config = load_model_config(out)
    assert config["model"] == "SegmentedRanker" and config["params"] == params
    assert set(config["source"]["per_segment"]) == TRUE_SEGMENTS
    # min_z 0: a segment takes trial 1's setting exactly when it gained on the prefix
    for segment, f in config["source"]["per_segment"].items():
        assert (segment in params["segment_params"]) == (f["trial"] == 1) == (f["best_gain"] > 0)
    assert config["source"]["segmenter"]["attributes"] == ["segment"]
    assert config["source"]["prefix_events"] == 1500
    assert all(f"| {name} |" in report for name in TRUE_SEGMENTS)
    # the written configuration is what evaluate --config runs, with its per-segment settings
    setup = segment_setup(sim, "segment", config=config)
    assert setup.config.rerank.segment_params == params["segment_params"]
    assert setup.config.hybrid.as_dict() == params["global_params"]
    assert _run(["evaluate", "--dataset", "simulator", "--sim-events", "1000", "--segments", "segment",
                 "--config", str(out), "--progress-every", "0"]) == 0
    assert "segment:students" in capsys.readouterr().out


def test_tune_rerank_refuses_segments_that_change_along_the_stream(sim):
    with pytest.raises(ValueError, match="needs profile segments"):
        tune_segments(sim, "behaviour", n_trials=1, progress=None)
