"""Local images for the process runtime: a folder registered under a name, plus a cached venv."""
