"""Push notifications through Apprise (``--notify URL``): one per review item when it becomes an alert.

``sender``: Apprise (imported only there, only with ``--notify``), one target per URL, with a timeout;
``worker``: the bounded queue and the thread that sends, with retries, so the pipeline never waits for
a phone; ``alerts``: which review items make a notification (once per item, a cooldown per source,
the class and zone filters), what it says and its picture.
"""
