"""Training and export code for DAMO-YOLO-structured detectors (written for this project from
docs/damo-yolo-facts.md and the fixture ONNX files; no official code is copied)."""
