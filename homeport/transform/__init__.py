"""Batch transform: a model's serving container run over whole datasets in the object store."""
