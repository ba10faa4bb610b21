"""The API edge: SageMaker's JSON 1.1 protocol, validation, and the error mapping."""
