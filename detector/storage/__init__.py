"""What a run keeps on disk, and for how long: continuous recording in segments (``recorder``:
annotated, ``raw``: the source's own packets), the list of segments (``segments``), the names of it
all (``layout``), retention by age, size and free space (``retention``: what it deletes is
``policy``'s, what it may delete ``safety``'s, what it finds at start ``stock``'s), and what a full
disk does to the run (``status``). ``setup.Storage`` puts it together for ``run.py``.
"""
