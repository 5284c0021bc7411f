"""Notifications through Apprise, to real loopback endpoints: the sender posts a title, a body and the
snapshot (a JPEG of real footage) to a ``json://`` webhook; a dead endpoint is tried ``retries`` more
times, each try bounded by the timeout, and never makes ``submit`` wait; a URL Apprise cannot use is
one line and exit 2."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from user_errors import Capture
from webhook import Blackhole, Webhook, attachments

from detector.notify.alerts import AlertNotifier
from detector.notify.sender import targets
from detector.notify.worker import QUEUE, Note, Notifier
from detector.review_items import Picture, ReviewItem, ReviewUpdate
from detector.settings.notify import NotifySettings


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


# -- which review items notify (the policy), with review updates as detector.reviews makes them ----------
T0 = 1_800_000_000.0
FRAME = np.full((1080, 1920, 3), 90, np.uint8)  # a 1080p frame: the attached snapshot is 1280 wide


def Item(
    id: str, *, severity: str = "alert", start_time: float = T0, objects: tuple[str, ...] = ("person",),
    zones: tuple[str, ...] = (), lines: tuple[str, ...] = (),
) -> ReviewItem:  # fmt: skip
    return ReviewItem(
        id=id, source="door", severity="alert" if severity == "alert" else "detection", start_time=start_time,
        end_time=None, last_time=start_time, media_start=0.0, media_end=1.0, objects=objects, zones=zones,
        lines=lines,
    )  # fmt: skip


class Recorder:
    """A target that keeps what it is sent."""

    name = "recorder://"

    def __init__(self) -> None:
        self.notes: list[Note] = []

    def send(self, note: Note) -> bool:
        self.notes.append(note)
        return True


def alerts(**settings: object) -> tuple[AlertNotifier, Notifier, Recorder]:
    target = Recorder()
    notifier = Notifier([target], timeout=1, retries=0).start()
    names = {0: "person", 2: "car"}
    return AlertNotifier(notifier, "door", NotifySettings.model_validate(settings), names), notifier, target


def play(notifier: AlertNotifier, *steps: tuple[str, ReviewItem]) -> None:
    before: dict[str, ReviewItem] = {}
    for kind, item in steps:
        ended = replace(item, end_time=item.last_time) if kind == "end" else item
        notifier.review(
            ReviewUpdate(kind, before.get(item.id, ended), ended, Picture(FRAME, (800, 300, 1000, 900)))
        )
        before[item.id] = ended


def test_an_item_notifies_once_when_it_becomes_an_alert() -> None:
    policy, notifier, target = alerts(cooldown=0, url_base="https://cams.example:8080")
    quiet = Item("a", severity="detection", objects=("dog",))
    alert = replace(quiet, severity="alert", objects=("dog", "person"), zones=("porch",), lines=("gate",))
    play(policy, ("new", quiet), ("update", quiet), ("update", alert), ("update", alert), ("end", alert))
    play(policy, ("new", Item("b", severity="detection")), ("end", Item("b", severity="detection")))
    notifier.close()
    [note] = target.notes
    assert note.title == "dog, person at door"
    when = datetime.fromtimestamp(1_800_000_000.0).astimezone()
    assert note.body == (
        f"door: dog, person in porch, crossing gate at {when:%H:%M:%S} on {when:%Y-%m-%d}\n"
        "https://cams.example:8080/history?review=a"
    )
    assert note.jpeg is not None
    shot = cv2.imdecode(np.frombuffer(note.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert shot.shape == (720, 1280, 3), "the best shot, no wider than notify.snapshot_width"
    assert policy.report()["notify"] == {"targets": ["recorder://"], "sent": 1, "failed": 0, "dropped": 0,
                                         "skipped": 0}  # fmt: skip
    assert not policy.done, "ended items are forgotten"


def test_the_cooldown_holds_per_source() -> None:
    policy, notifier, target = alerts(cooldown=30)
    t0 = 1_800_000_000.0
    for k, offset in enumerate([0.0, 10.0, 29.0, 31.0, 45.0, 62.0]):
        item = Item(f"i{k}", start_time=t0 + offset)
        play(policy, ("new", item), ("end", item))
    notifier.close()
    assert len(target.notes) == 3, "at 0, 31 and 62 s; 10, 29 and 45 s fall in a cooldown"
    assert policy.report()["notify"]["skipped"] == 3


def test_filters_by_class_and_zone_and_an_item_that_later_passes() -> None:
    policy, notifier, target = alerts(cooldown=0, classes=["car", 0], zones=["drive"])
    elsewhere = Item("a", objects=("car",), zones=("lawn",))
    play(policy, ("new", elsewhere), ("end", elsewhere))  # a car, not in the zone: held back
    dog = Item("b", objects=("dog",), zones=("drive",))
    play(policy, ("new", dog), ("end", dog))  # in the zone, not a wanted class
    later = Item("c", objects=("person",), zones=())
    play(policy, ("new", later), ("update", replace(later, zones=("drive",))))  # passes on its update
    notifier.close()
    assert [n.title for n in target.notes] == ["person at door"]
    assert policy.report()["notify"]["skipped"] == 2


def test_a_worker_still_sending_when_the_run_ends_stops_once_its_try_ends() -> None:
    release, started = threading.Event(), threading.Event()

    class Stuck:
        name = "stuck://"

        def send(self, note: Note) -> bool:
            started.set()
            return release.wait(10)

    notifier = Notifier([Stuck()], timeout=0.2, retries=0).start()
    for _ in range(3):
        notifier.submit("door", "t", "b")
    assert started.wait(5)
    notifier.close()  # gives up after its timeout: the three are dropped
    assert notifier.dropped["door"] == 3
    release.set()
    notifier._thread.join(5)
    assert not notifier._thread.is_alive(), "the worker ends, not left waiting on an empty queue"
    assert not notifier.sent and not notifier.failed
