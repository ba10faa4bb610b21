"""The ``homeport`` command line."""
