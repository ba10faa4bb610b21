"""Holds ``homeport_toolkit``, the in-container toolkit copied into every built-in image.

``homeport_toolkit`` runs inside the containers with their own Python, so it never imports
the ``homeport`` package; it is a plain top-level package there (``/opt/program/homeport_toolkit``).
``requirements.txt`` beside it lists what it needs at run time.
"""
