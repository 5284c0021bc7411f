"""Every file a run keeps on disk, and for how long: continuous recording in segments (``recorder``:
annotated, ``raw``: the source's own packets), the list of segments (``segments``), event clips and
snapshots (``clips``: the clip recorder, ``snapshot``, ``clipfolder``: the clips folder and its
``events.jsonl``), the one naming rule for all of them (``layout``), retention by age, size and free
space (``retention``: what it deletes is ``policy``'s, what it may delete ``safety``'s, what it finds
at start ``stock``'s; it asks the event store which files are its own), and what a full disk does to
the run (``status``). ``setup.Storage`` puts recording and retention together for ``compose.run``.
"""
