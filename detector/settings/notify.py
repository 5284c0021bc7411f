"""The ``notify`` section: push notifications through Apprise (``--notify URL``, repeatable), one per
review item when it becomes an alert, with its snapshot attached."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator, model_validator

from detector.settings.base import RUN, StrictModel, option, split_list


class NotifySettings(StrictModel):
    """Where and when to send a notification: Apprise URLs, a cooldown per source, filters."""

    urls: list[str] = option(
        help="send a notification with a snapshot for each alert to this Apprise URL (ntfy://, "
        "tgram://, json://, mailto://...); repeat for several",
        flag="--notify", commands=(RUN,), metavar="URL", repeat=True, default_factory=list,
        default_text="none", repr=False,
    )  # fmt: skip
    cooldown: float = option(
        30.0, "seconds after a notification in which a source sends no other", flag=False, ge=0, le=86400
    )
    classes: list[int | str] | None = option(
        None, "notify only for alerts with an object of these classes", flag=False, default_text="any"
    )
    zones: list[str] | None = option(
        None, "notify only for alerts in one of these zones", flag=False, default_text="anywhere"
    )
    url_base: str | None = option(
        None, "the web view's address as a phone reaches it (https://cams.example:8080): each "
        "notification links to its item on the history page", flag=False, default_text="no link",
    )  # fmt: skip
    timeout: float = option(
        10.0, "seconds one attempt to send may take, its whole exchange", flag=False, gt=0, le=600
    )
    retries: int = option(2, "attempts after a failed one", flag=False, ge=0, le=10)
    snapshot_width: int = option(
        1280, "widest attached snapshot; wider frames are scaled down", flag=False, ge=64, le=7680
    )

    @model_validator(mode="before")
    @classmethod
    def _bare_urls(cls, data: Any) -> Any:
        """``notify: ntfy://host/topic`` or a list of URLs in a config means ``notify: {urls: [...]}``."""
        return {"urls": data} if isinstance(data, str | list) else data

    _split = field_validator("classes", "zones", mode="before")(split_list)

    @field_validator("urls", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("urls")
    @classmethod
    def _look_like_urls(cls, v: list[str]) -> list[str]:
        for url in v:
            if "://" not in url:
                raise ValueError("should be an Apprise URL such as ntfy://ntfy.sh/TOPIC or json://HOST:PORT")
        return v

    @field_validator("url_base")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("should start with http:// or https://")
        return v.rstrip("/") if v else v
