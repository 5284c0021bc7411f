"""Zone polygons a user can get wrong: vertices out of order (the zone crosses itself), far too many
vertices (OpenCV then fills each frame for minutes), all on one line. Each is refused at start-up in
one line that says which. Runtime: ~5 s.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.settings.analytics import MAX_VERTICES, ZoneSpec, first_crossing


def zone_config(tmp_path: Path, points: list[list[float]], name: str = "lot") -> Path:
    cfg = tmp_path / "zones.yaml"
    cfg.write_text(f"zones:\n  - name: {name}\n    polygon: {points}\n")
    return cfg


def test_a_zone_that_crosses_itself_says_so(cli, clip, tmp_path, model_path, user_error_env) -> None:
    bowtie = [[0, 0], [100, 100], [100, 0], [0, 100]]  # the corners of a square, in the wrong order
    msg = cli.error("run", clip, "--model", model_path, "--config", zone_config(tmp_path, bowtie))
    assert "zone 'lot' crosses itself: its edge (0, 0)-(100, 100) crosses its edge (100, 0)-(0, 100)" in msg
    assert "no area" not in msg


def test_a_zone_on_one_line_has_no_area(cli, clip, tmp_path, model_path, user_error_env) -> None:
    flat = [[0, 0], [10, 10], [20, 20]]
    msg = cli.error("run", clip, "--model", model_path, "--config", zone_config(tmp_path, flat))
    assert msg == "zone 'lot' has no area on a 320x240 frame"


def test_a_zone_with_too_many_vertices_is_refused_in_one_short_line(
    cli, clip, tmp_path, model_path, user_error_env
) -> None:
    """2,000 random points: OpenCV took ~2 s a frame to fill them (100,000: minutes, deaf to Ctrl-C)."""
    points = np.random.default_rng(0).uniform(0, 240, (2 * MAX_VERTICES, 2)).round(1).tolist()
    msg = cli.error("run", clip, "--model", model_path, "--config", zone_config(tmp_path, points))
    assert f"zone 'lot' has {2 * MAX_VERTICES} vertices; at most {MAX_VERTICES} are allowed" in msg
    assert len(msg) < 400, "the error quotes a few of the points, not all of them"


def test_many_vertices_are_fine_when_the_zone_is_simple() -> None:
    circle = [(0.5 + 0.4 * math.cos(a), 0.5 + 0.4 * math.sin(a)) for a in np.linspace(0, 6.28, MAX_VERTICES)]
    assert ZoneSpec(name="round", polygon=circle).polygon[0] == circle[0]
    u_shape = [(0, 0), (30, 0), (30, 50), (60, 50), (60, 0), (90, 0), (90, 90), (0, 90)]  # concave
    assert first_crossing(u_shape) is None
    assert first_crossing([(0, 0), (10, 0), (10, 0), (10, 10), (0, 10)]) is None, "a repeated vertex"


def _crosses(a, b, c, d) -> bool:
    """Segments ab and cd meet (touching counts), by hand."""

    def side(p, q, r) -> int:
        v = (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])
        return (v > 0) - (v < 0)

    def on(p, q, r) -> bool:
        return min(p[0], q[0]) <= r[0] <= max(p[0], q[0]) and min(p[1], q[1]) <= r[1] <= max(p[1], q[1])

    s1, s2, s3, s4 = side(c, d, a), side(c, d, b), side(a, b, c), side(a, b, d)
    if s1 * s2 < 0 and s3 * s4 < 0:
        return True
    return any(
        s == 0 and on(p, q, r) for s, p, q, r in ((s1, c, d, a), (s2, c, d, b), (s3, a, b, c), (s4, a, b, d))
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=4, max_size=8, unique=True))
def test_crossing_matches_a_pairwise_check_by_hand(points: list[tuple[int, int]]) -> None:
    n = len(points)
    edges = [(points[k], points[(k + 1) % n]) for k in range(n)]
    pairs = [(i, j) for i, j in itertools.combinations(range(n), 2) if j - i not in (1, n - 1)]
    expected = any(_crosses(*edges[i], *edges[j]) for i, j in pairs)
    assert (first_crossing(points) is not None) == expected, points
