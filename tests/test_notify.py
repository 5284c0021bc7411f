"""Notifications through Apprise, to real loopback endpoints: the sender posts a title, a body and the
snapshot (a JPEG of real footage) to a ``json://`` webhook; a dead endpoint is tried ``retries`` more
times, each try bounded by the timeout, and never makes ``submit`` wait; a URL Apprise cannot use is
one line and exit 2."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from user_errors import Capture
from webhook import Blackhole, Webhook, attachments

from detector.notify.sender import targets
from detector.notify.worker import QUEUE, Notifier


def street_jpeg(videos_dir: Path) -> bytes:
    with av.open(str(videos_dir / "person-bicycle-car-detection.gif")) as c:
        frame = next(c.decode(c.streams.video[0])).to_ndarray(format="bgr24")
    ok, data = cv2.imencode(".jpg", frame)
    assert ok
    return data.tobytes()


def test_a_notification_posts_its_title_body_and_snapshot(videos_dir: Path) -> None:
    jpeg = street_jpeg(videos_dir)
    with Webhook() as hook:
        notifier = Notifier(targets([hook.url], timeout=5), timeout=5, retries=0).start()
        assert notifier.submit("street", "person in lot", "street: person, car in lot", lambda: jpeg)
        notifier.close()
        posts = hook.received()
    assert len(posts) == 1 and posts[0]["path"] == "/hook"
    assert posts[0]["json"]["title"] == "person in lot"
    assert posts[0]["json"]["message"] == "street: person, car in lot"
    [(name, mime, data)] = attachments(posts[0])
    assert (name, mime) == ("snapshot.jpg", "image/jpeg") and data == jpeg
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (270, 480, 3)
    assert notifier.sent["street"] == 1 and not notifier.failed and not notifier.dropped


def test_a_dead_endpoint_is_retried_then_given_up_and_never_holds_submit() -> None:
    with Blackhole() as dead, Webhook() as alive:
        notifier = Notifier(targets([dead.url, alive.url], timeout=0.5), timeout=5, retries=1).start()
        sending = threading.Event()
        notifier.submit("door", "t", "b", lambda: sending.set() or None)
        assert sending.wait(5)
        # While the worker waits on the dead endpoint, more notifications queue at once, up to QUEUE.
        taken = [notifier.submit("door", "t", "b") for _ in range(QUEUE + 3)]
        assert taken.count(False) >= 3 and notifier.dropped["door"] == taken.count(False)
        notifier.close()
        assert dead.connections >= 2, "a try and a retry"
    assert notifier.failed["door"] >= 1, "the dead endpoint never took the first one"
    assert alive.received(), "the live endpoint got it, though the other is dead"
    total = notifier.sent["door"] + notifier.failed["door"] + notifier.dropped["door"]
    assert total == QUEUE + 4, "every notification is accounted for"


def test_a_url_apprise_cannot_use_is_one_line_and_exit_2(cli: Capture, clip: Path) -> None:
    message = cli.error("run", clip, "--notify", "nosuchservice://tok3n-s3cret@host/x")
    assert message.startswith("--notify nosuchservice://...: Apprise cannot send to this URL")
    assert "tok3n" not in message


@pytest.mark.parametrize("url", ["json://127.0.0.1:9/x", "tgram://123456789:AAEsecretsecret/12345"])
def test_targets_are_named_without_their_secrets(url: str) -> None:
    [target] = targets([url], timeout=1)
    assert "secret" not in target.name and target.name.startswith(url.partition("://")[0] + "://")
