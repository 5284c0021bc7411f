"""What MQTT and notifications read of a review update: the part of ``detector.reviews`` (issue 21:
``ReviewUpdate``, ``ReviewItem``, ``BestShot``, ``Picture``) they use, as protocols, so that these
listeners need nothing else of it. The lane's reviewer calls ``review(update)`` on its listeners, on
the lane's thread, in order; a listener queues and returns.
"""

from __future__ import annotations

from typing import Any, Protocol


class Shot(Protocol):
    @property
    def class_name(self) -> str: ...


class Item(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def severity(self) -> str: ...  # "alert" or "detection"
    @property
    def start_time(self) -> float: ...  # Unix time
    @property
    def last_time(self) -> float: ...
    @property
    def objects(self) -> tuple[str, ...]: ...  # classes
    @property
    def zones(self) -> tuple[str, ...]: ...
    @property
    def lines(self) -> tuple[str, ...]: ...
    @property
    def best(self) -> Shot | None: ...


class Picture(Protocol):
    def jpeg(self, width: int | None = None, quality: int = 85) -> bytes: ...


class Update(Protocol):
    @property
    def type(self) -> str: ...  # "new", "update" or "end"
    @property
    def before(self) -> Item: ...
    @property
    def after(self) -> Item: ...
    @property
    def picture(self) -> Picture | None: ...

    def to_dict(self) -> dict[str, Any]: ...
