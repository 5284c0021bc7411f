"""A size that is no size (infinity, NaN, a negative one, more digits than a float holds) in
``retain.max_size`` or ``retain.min_free`` is one line and exit 2, never an internal error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from user_errors import Capture

HUGE = "9" * 400 + "GB"


@pytest.mark.parametrize("key", ["max_size", "min_free"])
@pytest.mark.parametrize(
    ("value", "says"),
    [
        (float("inf"), "should be at most 1000000TB (got inf)"),
        (float("-inf"), "should be more than 0 bytes (got -inf)"),
        (float("nan"), "should be a size such as 50GB or 500MB (got nan)"),
        (-5, "should be more than 0 bytes (got -5)"),
        (HUGE, "should be at most 1000000TB"),
    ],
    ids=["inf", "-inf", "nan", "negative", "huge"],
)
def test_a_size_that_is_no_size_is_one_line_and_exit_2(
    cli: Capture, clip: Path, tmp_path: Path, key: str, value: object, says: str
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"retain": {key: value}}))
    message = cli.error("run", clip, "--config", config, "--record", tmp_path / "rec")
    assert message.startswith(f"config {config}: key 'retain.{key}' {says}")
    assert not (tmp_path / "rec").exists(), "nothing started"


@pytest.mark.parametrize(
    "text", ["1e400", HUGE, "inf", "nan", "-1GB"], ids=["1e400", "huge", "inf", "nan", "-1GB"]
)
def test_a_size_flag_that_is_no_size_is_one_line_and_exit_2(cli: Capture, clip: Path, text: str) -> None:
    message = cli.error("run", clip, f"--retain-max-size={text}", "--record", "rec")
    assert message.startswith("--retain-max-size should be")
