"""Real-time hosting: serving instances, the endpoint controller and the invocation router."""
