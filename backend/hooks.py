"""Session hooks every process installs at its entry point: the app factory, the Celery app and the CLI.

The database layer (the kernel) knows no domain; a domain that must see every commit hooks the sessions here.
"""

from __future__ import annotations

from backend.cases.figures import check_deployment_figures
from backend.config import get_settings
from backend.public import store as public_store


def install() -> None:
    """Install the process-wide session hooks (idempotent), after refusing settings that name unknown domain
    things (deadline names: the settings themselves know no domain)."""
    check_deployment_figures(get_settings())
    # Every session tells the shared public store which operators a commit changed.
    public_store.install()
