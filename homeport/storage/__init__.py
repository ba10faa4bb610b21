"""Object storage: ``s3://bucket/key`` everywhere, a local-folder backend and an S3 backend."""
