"""Exporting Homeport models to run elsewhere: :mod:`homeport.export.onnx_bundle` writes a
self-contained folder that serves a model's ``model.onnx`` (``homeport export --format onnx``)."""
