"""Runtimes: how a container image is run (processes in namespaces; later OCI engines)."""
