"""What a store's files are called, apart from ``schema`` so that retention and the composition can
name them without loading sqlite3 (a run without a store never imports it)."""

from __future__ import annotations

DEFAULT_NAME = "events.db"  # beside the clips: DIR/events.db with --clips DIR
SIDE_FILES = ("-wal", "-shm", "-journal")  # what SQLite keeps beside the file while it is open


def store_file_names(name: str = DEFAULT_NAME) -> tuple[str, ...]:
    """The files a store named ``name`` is made of: the store and SQLite's side files (retention
    leaves them alone and counts them as the folder's index)."""
    return (name, *(name + side for side in SIDE_FILES))
