"""Tracking and temporal smoothing of 2D keypoints (pose2mesh.tracking)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pose2mesh.errors import Pose2MeshError
from pose2mesh.tracking import OneEuroFilter, Tracker, TrackingError, smooth_track

# a 17-joint stick figure (human36 order), 1 unit tall, feet at y = 1
TEMPLATE = np.array([
    [0.0, 0.5], [-0.1, 0.5], [-0.1, 0.75], [-0.1, 1.0], [0.1, 0.5], [0.1, 0.75], [0.1, 1.0], [0.0, 0.35],
    [0.0, 0.2], [0.0, 0.12], [0.0, 0.05], [0.15, 0.2], [0.2, 0.35], [0.22, 0.5], [-0.15, 0.2], [-0.2, 0.35],
    [-0.22, 0.5]])


def person(x: float, y: float, height: float, wave: float = 0.0) -> np.ndarray:
    """A J x 3 detection: the template scaled to ``height`` pixels, feet centre at (x, y)."""
    xy = TEMPLATE.copy()
    xy[13] += [0.1 * math.sin(wave), -0.1 * math.cos(wave)]  # one moving wrist
    xy = xy * height + [x, y - height]
    return np.concatenate([xy, np.ones((len(xy), 1))], axis=1)


# ---------------------------------------------------------------------------------------------
# Tracker

def crossing_frames(rng, hide_back=range(0)):
    """Two people walking towards each other and past; returns frames (shuffled detections)
    and the true person of each detection. ``hide_back``: frames where the farther person is
    hidden behind the nearer one (not detected)."""
    frames, truth = [], []
    for t in range(60):
        near = person(100 + 8 * t, 500, 300, wave=0.3 * t)       # walks right
        far = person(580 - 8 * t, 470, 260, wave=0.3 * t + 1.0)   # walks left, a little farther away
        dets = [(near, "near")] + ([] if t in hide_back else [(far, "far")])
        dets = [(d + np.concatenate([rng.normal(0, 2.0, (17, 2)), np.zeros((17, 1))], 1), who) for d, who in dets]
        order = rng.permutation(len(dets))
        frames.append([dets[i][0] for i in order])
        truth.append([dets[i][1] for i in order])
    return frames, truth


def ids_by_person(ids_per_frame, truth):
    seen = {}
    for ids, who in zip(ids_per_frame, truth):
        for i, w in zip(ids, who):
            seen.setdefault(w, set()).add(i)
    return seen


def test_people_crossing_paths_keep_their_ids():
    frames, truth = crossing_frames(np.random.default_rng(0))
    seen = ids_by_person(Tracker.run(frames), truth)
    assert len(seen["near"]) == 1 and len(seen["far"]) == 1
    assert seen["near"] != seen["far"]
    assert seen["near"] | seen["far"] == {0, 1}


def test_crossing_with_the_farther_person_hidden_keeps_ids():
    # the paths cross at t = 30; the farther person is not detected for 8 frames around it
    frames, truth = crossing_frames(np.random.default_rng(1), hide_back=range(26, 34))
    seen = ids_by_person(Tracker(max_age=10).run(frames), truth)
    assert seen == {"near": seen["near"], "far": seen["far"]}
    assert len(seen["near"]) == 1 and len(seen["far"]) == 1 and seen["near"] != seen["far"]


def test_person_away_longer_than_max_age_gets_a_new_id():
    max_age = 5
    for away, same in ((max_age, True), (max_age + 1, False)):
        tracker = Tracker(max_age=max_age)
        frames = [[person(300, 500, 300), person(700, 500, 300)] for _ in range(10)]
        frames += [[person(700, 500, 300)] for _ in range(away)]
        frames += [[person(300, 500, 300), person(700, 500, 300)] for _ in range(3)]
        ids = tracker.run(frames)
        assert ids[0] == [0, 1]
        assert all(f == [1] for f in ids[10:10 + away])
        expected = 0 if same else 2
        assert all(f == [expected, 1] for f in ids[10 + away:]), (away, ids[10 + away:])


def test_ids_start_at_zero_and_increase_and_match_the_detection_order():
    tracker = Tracker()
    assert tracker.update([]) == []
    assert tracker.update([person(100, 500, 300)]) == [0]
    # a new person far away: a new id; the order of the returned ids is the detections' order
    assert tracker.update([person(900, 500, 300), person(100, 500, 300)]) == [1, 0]
    assert tracker.update([person(100, 500, 300), person(900, 500, 300), person(500, 900, 200)]) == [0, 1, 2]


def test_detection_without_valid_joints_gets_minus_one():
    empty = person(100, 500, 300)
    empty[:, 2] = 0.0
    tracker = Tracker()
    assert tracker.update([person(100, 500, 300), empty]) == [0, -1]
    assert tracker.update([person(102, 500, 300)]) == [0]
    assert tracker.next_id == 1


def test_detections_without_confidence_count_as_confident():
    frames, _ = crossing_frames(np.random.default_rng(11))
    without = [[d[:, :2] for d in frame] for frame in frames]
    assert Tracker.run(without) == Tracker.run(frames)


def test_low_confidence_joints_are_ignored_in_matching():
    tracker = Tracker(confidence_threshold=0.3)
    tracker.update([person(100, 500, 300)])
    moved = person(104, 500, 300)
    moved[:8, :2] += 5000.0  # far-off junk on joints the detector is unsure of
    moved[:8, 2] = 0.1
    assert tracker.update([moved]) == [0]


def test_tracker_is_deterministic():
    frames, _ = crossing_frames(np.random.default_rng(2), hide_back=range(27, 32))
    first = Tracker(max_age=8).run(frames)
    assert Tracker(max_age=8).run(frames) == first
    assert Tracker.run(frames, max_age=8) == first


@pytest.mark.parametrize("detections", [
    [np.zeros(17)],                      # not J x 3
    [np.zeros((17, 4))],                 # 4 columns
    [np.zeros((0, 3))],                  # no joints
    [[["a", "b", "c"]]],                 # not numeric
    np.zeros((17, 3)),                   # one array, not a list of arrays
    "people",
])
def test_tracker_rejects_bad_detections(detections):
    with pytest.raises(TrackingError, match="Tracker.update"):
        Tracker().update(detections)


def test_tracker_rejects_a_change_of_joint_count_and_bad_parameters():
    tracker = Tracker()
    tracker.update([person(100, 500, 300)])
    with pytest.raises(TrackingError, match="19 joints.*17-joint"):
        tracker.update([np.ones((19, 3))])
    for kwargs in ({"max_age": -1}, {"max_age": 2.5}, {"min_similarity": 1.5}, {"iou_weight": -0.1},
                   {"keypoint_sigma": 0.0}, {"velocity_decay": float("nan")}):
        with pytest.raises(TrackingError):
            Tracker(**kwargs)
    with pytest.raises(TrackingError, match="list of frames"):
        Tracker.run(5)
    assert issubclass(TrackingError, Pose2MeshError) and issubclass(TrackingError, ValueError)


# ---------------------------------------------------------------------------------------------
# OneEuroFilter

def test_filter_reduces_jitter_on_a_noisy_constant_signal():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(fps=30.0, min_cutoff=1.0, beta=0.0)
    noisy = 100.0 + rng.normal(0.0, 3.0, (300, 17, 2))
    out = np.stack([f.filter(x) for x in noisy])
    # first-order low-pass at 1 Hz, 30 fps: output variance (1 - a) / (1 + a)... about a tenth
    a = 2 * np.pi / 30.0 / (2 * np.pi / 30.0 + 1.0)
    expected_std = 3.0 * math.sqrt(a / (2.0 - a))
    assert out[60:].std() == pytest.approx(expected_std, rel=0.15)
    assert out[60:].std() < 0.35 * noisy[60:].std()
    assert abs(out[60:].mean() - 100.0) < 0.5


@pytest.mark.parametrize("beta", [0.0, 0.05])
def test_filter_follows_a_ramp_with_the_predicted_lag(beta):
    # steady state on x = v t: lag = v / (2 pi (min_cutoff + beta v)), constant (bounded)
    v, fps, min_cutoff = 40.0, 30.0, 1.5
    f = OneEuroFilter(fps=fps, min_cutoff=min_cutoff, beta=beta, d_cutoff=1.0)
    t = np.arange(400) / fps
    out = np.array([f.filter(np.array([v * ti]), ti)[0] for ti in t])
    lag = v * t - out
    predicted = v / (2 * np.pi * (min_cutoff + beta * v))
    assert np.all(lag >= -1e-9)
    assert lag[-1] == pytest.approx(predicted, rel=1e-3)
    # bounded all along by the lag of the plain low-pass at min_cutoff (the speed estimate
    # starts at 0, so with beta > 0 the lag first overshoots its steady state)
    assert np.max(lag) <= v / (2 * np.pi * min_cutoff) * (1 + 1e-6)
    if beta > 0:  # the speed term shortens the lag
        assert predicted < v / (2 * np.pi * min_cutoff) / 2


def test_filter_without_time_stamps_uses_the_frame_rate():
    rng = np.random.default_rng(3)
    xs = rng.normal(size=(20, 4, 2))
    a, b = OneEuroFilter(fps=25.0, beta=0.5), OneEuroFilter(fps=25.0, beta=0.5)
    out_a = [a.filter(x) for x in xs]
    out_b = [b.filter(x, t=0.5 + i / 25.0) for i, x in enumerate(xs)]
    np.testing.assert_allclose(out_a, out_b, rtol=1e-12, atol=1e-12)


def test_nan_joints_pass_through_without_corrupting_the_state():
    rng = np.random.default_rng(4)
    xs = np.cumsum(rng.normal(size=(40, 5, 2)), axis=0)
    with_gap = xs.copy()
    with_gap[10:15, 2] = np.nan       # joint 2 missing for 5 frames
    with_gap[20, 3, 0] = np.nan       # one coordinate missing for one frame
    f_ref, f_gap = OneEuroFilter(beta=0.2), OneEuroFilter(beta=0.2)
    ref = np.stack([f_ref.filter(x) for x in xs])
    out = np.stack([f_gap.filter(x) for x in with_gap])
    # the other joints are exactly as without the gaps
    others = [0, 1, 4]
    np.testing.assert_array_equal(out[:, others], ref[:, others])
    assert np.isnan(out[10:15, 2]).all() and np.isnan(out[20, 3, 0])
    assert np.isfinite(out[15:, 2]).all() and np.isfinite(out[21:, 3]).all()
    # before the gap the joint is untouched; after it the filter resumes from its last state:
    # a NaN never enters the state
    np.testing.assert_array_equal(out[:10, 2], ref[:10, 2])
    assert np.abs(out[15:, 2] - xs[15:, 2]).max() < 10.0


def test_zero_confidence_values_pass_through_and_do_not_enter_the_state():
    rng = np.random.default_rng(5)
    xs = np.cumsum(rng.normal(size=(30, 3, 2)), axis=0)
    conf = np.ones((30, 3))
    conf[5:9, 1] = 0.0
    junk_a, junk_b = xs.copy(), xs.copy()
    junk_a[5:9, 1] = 1e6
    junk_b[5:9, 1] = -3e3
    fa, fb = OneEuroFilter(beta=0.1), OneEuroFilter(beta=0.1)
    out_a = np.stack([fa.filter(x, confidence=c) for x, c in zip(junk_a, conf)])
    out_b = np.stack([fb.filter(x, confidence=c) for x, c in zip(junk_b, conf)])
    np.testing.assert_array_equal(out_a[5:9, 1], junk_a[5:9, 1])  # passed through as given
    keep = np.ones(30, bool)
    keep[5:9] = False
    np.testing.assert_array_equal(out_a[keep], out_b[keep])          # the junk changed nothing else


def test_filter_rejects_bad_input():
    with pytest.raises(TrackingError, match="min_cutoff"):
        OneEuroFilter(min_cutoff=0.0)
    with pytest.raises(TrackingError, match="fps"):
        OneEuroFilter(fps=-30)
    with pytest.raises(TrackingError, match="beta"):
        OneEuroFilter(beta=-1.0)
    f = OneEuroFilter()
    f.filter(np.zeros((17, 2)), t=1.0)
    with pytest.raises(TrackingError, match="shape"):
        f.filter(np.zeros((19, 2)), t=2.0)
    with pytest.raises(TrackingError, match="increase"):
        f.filter(np.zeros((17, 2)), t=1.0)
    with pytest.raises(TrackingError, match="confidence"):
        f.filter(np.zeros((17, 2)), t=2.0, confidence=np.ones(5))
    f.reset()
    assert f.filter(np.ones((19, 2)), t=0.0).shape == (19, 2)


# ---------------------------------------------------------------------------------------------
# smooth_track

def noisy_walk(rng, frames=120, fps=30.0, noise=3.0):
    t = np.arange(frames) / fps
    truth = np.stack([person(200 + 60 * ti, 500 + 10 * math.sin(2 * ti), 300, wave=2 * ti)[:, :2] for ti in t])
    noisy = truth + rng.normal(0.0, noise, truth.shape)
    conf = rng.uniform(0.5, 1.0, truth.shape[:2] + (1,))
    return truth, np.concatenate([noisy, conf], axis=-1)


def accel(x):
    return np.linalg.norm(x[:-2] - 2 * x[1:-1] + x[2:], axis=-1).mean()


def test_smooth_track_reduces_jitter_and_keeps_close_to_the_motion():
    truth, track = noisy_walk(np.random.default_rng(6))
    out = smooth_track(track, fps=30.0)
    assert out.shape == track.shape
    np.testing.assert_array_equal(out[..., 2], track[..., 2])  # confidences unchanged
    assert accel(out[..., :2]) < 0.2 * accel(track[..., :2])
    raw_err = np.linalg.norm(track[..., :2] - truth, axis=-1).mean()
    assert np.linalg.norm(out[..., :2] - truth, axis=-1).mean() < raw_err


def test_smooth_track_strength():
    _, track = noisy_walk(np.random.default_rng(7))
    np.testing.assert_array_equal(smooth_track(track, 30.0, strength=0), track)
    jitter = [accel(smooth_track(track, 30.0, strength=s)[..., :2]) for s in (0.25, 1.0, 4.0)]
    assert jitter[0] > jitter[1] > jitter[2]


def test_forward_backward_has_less_lag_than_forward_only():
    truth, track = noisy_walk(np.random.default_rng(8))
    err = {b: np.linalg.norm(smooth_track(track, 30.0, backward=b)[..., :2] - truth, axis=-1)[10:-10].mean()
           for b in (False, True)}
    assert err[True] < 0.5 * err[False]


def test_smooth_track_is_scale_invariant_and_deterministic():
    _, track = noisy_walk(np.random.default_rng(9))
    out = smooth_track(track, 30.0)
    np.testing.assert_array_equal(smooth_track(track, 30.0), out)
    scaled = track.copy()
    scaled[..., :2] *= 3.0
    np.testing.assert_allclose(smooth_track(scaled, 30.0)[..., :2], 3.0 * out[..., :2], rtol=1e-9)


def test_smooth_track_missing_joints_pass_through():
    _, track = noisy_walk(np.random.default_rng(10))
    a, b = track.copy(), track.copy()
    a[30:40, 4, 2] = 0.0
    b[30:40, 4, 2] = 0.0
    a[30:40, 4, :2] = 1e5
    b[30:40, 4, :2] = np.nan
    a[50, 7, 2] = 0.0
    a[50, 7, :2] = -7.0
    b[50, 7, :2] = np.nan
    out_a, out_b = smooth_track(a, 30.0), smooth_track(b, 30.0)
    np.testing.assert_array_equal(out_a[30:40, 4, :2], a[30:40, 4, :2])
    assert np.isnan(out_b[30:40, 4, :2]).all() and np.isnan(out_b[50, 7, :2]).all()
    assert np.isfinite(out_b[:, 4][np.r_[0:30, 40:120], :2]).all()
    # the missing values change nothing anywhere else (the person's size comes from valid joints)
    keep = np.ones(track.shape[:2], bool)
    keep[30:40, 4] = False
    keep[50, 7] = False
    np.testing.assert_allclose(out_a[keep], out_b[keep], rtol=1e-12)
    assert np.abs(out_a[40:, 4, :2] - track[40:, 4, :2]).max() < 30.0


@pytest.mark.parametrize("bad, match", [
    (np.zeros((10, 17)), "T x J x 3"),
    (np.zeros((10, 17, 4)), "T x J x 3"),
    (np.zeros((10, 0, 3)), "T x J x 3"),
    ([["x"]], "numeric"),
])
def test_smooth_track_rejects_bad_shapes(bad, match):
    with pytest.raises(TrackingError, match=match):
        smooth_track(bad, fps=30.0)


def test_smooth_track_rejects_bad_rates():
    track = np.zeros((5, 17, 3))
    for kwargs in ({"fps": 0.0}, {"fps": float("inf")}, {"fps": 30.0, "strength": -1.0}):
        with pytest.raises(Pose2MeshError):
            smooth_track(track, **kwargs)
