"""The ASGI entry point for uvicorn: ``backend.asgi:app``."""

import logging

from backend.main import create_app

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = create_app()
