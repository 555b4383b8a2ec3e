"""Process roles (serve, worker, beat, relay): the scheduler lease and each role's liveness and readiness."""
