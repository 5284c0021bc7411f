"""The pipelined loop: capture threads, one inference thread, lanes of stages and sinks."""
