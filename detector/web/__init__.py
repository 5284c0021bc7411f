"""The web view of a run (``detector run SOURCE --serve [HOST:]PORT``).

``config``: what to serve and the safety checks made before anything starts; ``feeds``: what the
pipeline publishes per source (no server code); ``view``: the facade ``Run`` calls and the sink;
``server`` (Starlette + uvicorn), ``broadcast``, ``status`` and ``metrics`` are imported only once
``--serve`` is given, so a run without it starts as fast as before.
"""
