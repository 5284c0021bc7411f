"""Composition: what a run is made of, built in one place (the sources' plan, every lane's sinks and
listeners, the outlets, the storage) and run (``compose.run``)."""
