"""Training jobs: the API's domain logic, the lifecycle state machine and the job runner."""
