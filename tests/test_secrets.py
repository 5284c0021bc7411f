"""Secrets never reach stderr or the report, with or without ``--debug``: a bad setting next to (or
holding) a password, a token or a URL with credentials is one line that names the key, and its
traceback under ``--debug`` (pydantic's ``input_value=...`` included) shows no secret; an ntfy topic
(on a public server, the password) is masked as Apprise masks tokens, in the log and the report."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from user_errors import Capture

from detector.notify.sender import targets

SECRET = "Secr3tPw"

CONFIGS = {
    "mqtt url with a bad port": {"mqtt": {"url": f"mqtt://u:{SECRET}@broker:0"}},
    "mqtt url with a wildcard": {"mqtt": f"mqtt://u:{SECRET}@broker/a+b"},
    "mqtt section as a list": {"mqtt": [f"mqtt://u:{SECRET}@broker"]},
    "password of the wrong type": {"mqtt": {"url": "mqtt://broker", "password": [SECRET]}},
    "bad qos next to a password": {"mqtt": {"url": "mqtt://broker", "password": SECRET, "qos": 7}},
    "token of the wrong type": {"serve": {"token": [SECRET]}},
    "camera url next to a bad name": {"sources": [{"source": f"rtsp://u:{SECRET}@cam/1", "name": "a b"}]},
}


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
@pytest.mark.parametrize("case", list(CONFIGS))
def test_a_bad_config_never_shows_a_secret(
    cli: Capture, clip: Path, tmp_path: Path, case: str, debug: bool
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(CONFIGS[case]))
    code, lines, _ = cli.run("run", clip, "--config", config, *(["--debug"] if debug else []))
    text = "\n".join(lines)
    assert code == 2, text
    assert lines[-1].startswith(f"detector: error: config {config}: key '"), text
    assert ("Traceback" in text) == debug
    assert SECRET not in text


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
@pytest.mark.parametrize(
    "flags",
    [
        ("--mqtt", f"mqtt://u:{SECRET}@broker:0"),
        ("--mqtt", f"mqtt://u:{SECRET}@broker:99999"),
        ("--serve-token", SECRET, "--serve", "nowhere:notaport"),
    ],
    ids=["bad port", "port too big", "token next to a bad address"],
)
def test_a_bad_flag_never_shows_a_secret(
    cli: Capture, clip: Path, flags: tuple[str, ...], debug: bool
) -> None:
    code, lines, _ = cli.run("run", clip, *flags, *(["--debug"] if debug else []))
    text = "\n".join(lines)
    assert code == 2, text
    assert lines[-1].startswith("detector: error: --"), text
    assert SECRET not in text


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("ntfy://user:pw@127.0.0.1:9/TopicSecret", ["ntfy:", "", "user:****@127.0.0.1:9", "T...t"]),
        ("ntfy://TopicSecret", ["ntfys:", "", "T...t"]),  # ntfy.sh: the topic is all there is
        ("ntfys://ntfy.example/TopicSecret/OtherSecret", ["ntfys:", "", "ntfy.example", "O...t", "T...t"]),
    ],
)
def test_ntfy_topics_are_masked_in_target_names(url: str, parts: list[str]) -> None:
    [target] = targets([url], timeout=1)
    assert sorted(target.name.split("/")) == sorted(parts)


def test_an_ntfy_topic_is_masked_in_the_log_and_the_report(clip: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    url = "ntfy://user:pw@127.0.0.1:9/TopicSecret"
    cmd = ["detector", "run", str(clip), "--notify", url, "--report", str(report), "--debug"]
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert "notifications to ntfy://user:****@127.0.0.1:9/T...t" in done.stderr
    assert "TopicSecret" not in done.stderr
    assert "TopicSecret" not in report.read_text()
    assert json.loads(report.read_text())["notify"]["targets"] == ["ntfy://user:****@127.0.0.1:9/T...t"]
