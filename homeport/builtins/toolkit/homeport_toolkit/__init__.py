"""homeport_toolkit: what Homeport's built-in images run inside their containers.

A small, typed stand-in for the two AWS toolkits that SageMaker's framework images use:

* :mod:`homeport_toolkit.serving` — the ``serve`` entry point: the sagemaker-inference handler
  contract (``model_fn``, ``input_fn``/``predict_fn``/``output_fn`` or ``transform_fn``) behind a
  bare ASGI app served by uvicorn worker processes (``/ping``, ``/invocations``,
  ``/execution-parameters``);
* :mod:`homeport_toolkit.training` — the ``train`` entry point of script mode, behaving like
  sagemaker-training 5.1.4 (the ``SM_*`` environment, hyperparameters as arguments, the source
  directory from ``sagemaker_submit_directory``, success/failure files);
* :mod:`homeport_toolkit.environment` — the ``SM_*`` computation, reusable by algorithm scripts.

Supporting modules: :mod:`~homeport_toolkit.paths` (the ``/opt/ml`` layout, relocatable with
``SAGEMAKER_BASE_DIR``), :mod:`~homeport_toolkit.content` (default decoders and encoders),
:mod:`~homeport_toolkit.handler` (handler resolution and the invocation pipeline),
:mod:`~homeport_toolkit.app` (the ASGI app), :mod:`~homeport_toolkit.files` (safe source
extraction, S3 download, status files), :mod:`~homeport_toolkit.errors`, and
:mod:`~homeport_toolkit.fast_sklearn` (scikit-learn tree predictions without the per-call input
validation, for handlers that want them).

It never imports the ``homeport`` package: the containers have only this folder.
"""

__version__ = "1.0.0"
