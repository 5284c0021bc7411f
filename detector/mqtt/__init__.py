"""MQTT: what a run tells a broker (``--mqtt``), shaped like Frigate's topics, with Home Assistant
discovery.

``topics``: the topic names and the payloads of the state topics; ``link``: the connection (paho-mqtt,
imported only here, only with ``--mqtt``), checked at start and reconnected with backoff; ``outbox``:
the bounded outbox and the thread that publishes from it, so the pipeline never waits for the
broker; ``discovery``: the Home Assistant config messages; ``sink``: one source's sink (counts, zones,
events, snapshots, status, review items). ``detector.compose.outlets`` builds them for a run.
"""
