"""Sinks: per-frame writers, where annotated frames and detections go (video file, JSON lines, tables,
window, heatmap, timeline). Their contract, ``Sink``, and ``FrameResult`` are core types
(``detector.types``)."""
