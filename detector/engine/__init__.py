"""Turn decoded messages into evidence and evidence into detections."""

from detector.engine.inspector import FlowInspector

__all__ = ["FlowInspector"]
