"""The event store: one SQLite file (WAL) holding every event record, review item, clip, snapshot and
recording segment of the runs that write it (``--events-db FILE``; by default ``DIR/events.db`` with
``--clips DIR``).

``schema``: the tables and their migrations; ``writer``: ``EventStore``, the thread that writes in
batches, and each source's ``StoreHandle``; ``rows``: records, items and files as rows; ``queries``:
``StoreReader``, what the web view's API, the history page and ``detector events`` read.
"""
