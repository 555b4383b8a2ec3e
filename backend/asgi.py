"""The ASGI entry point for uvicorn: ``backend.asgi:app``."""

from backend.main import create_app

app = create_app()
