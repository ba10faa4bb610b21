"""S3's REST API over the local object store, on the same URL as the SageMaker API.

``app.build_s3_app`` is the ASGI application; ``app.with_s3`` puts it in front of another
application, taking the requests whose SigV4 credential scope names the "s3" service.
"""
