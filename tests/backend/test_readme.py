"""The README's configuration table documents every setting (operators configure from it, not from code)."""

from __future__ import annotations

from pydantic import AliasChoices

from backend.config import ROOT, Settings


def _env_names(name: str) -> list[str]:
    field = Settings.model_fields[name]
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [f"GONGPING_{name.upper()}"]


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [
        names[0]
        for names in (_env_names(name) for name in Settings.model_fields)
        if not any(f"`{env}`" in readme for env in names)
    ]
    assert not missing, f"README.md configuration table lacks: {', '.join(missing)}"


def _leaf_commands() -> list[str]:
    """Every runnable ``gongping`` command path, as typed ("qr sheet", "open311 key create")."""
    import typer
    from typer._click.core import Context

    from backend.cli import app

    found: list[str] = []

    def walk(command: object, path: list[str]) -> None:
        list_commands = getattr(command, "list_commands", None)
        if list_commands is None:
            found.append(" ".join(path))
            return
        context = Context(command)  # type: ignore[arg-type]
        for name in list_commands(context):
            walk(command.get_command(context, name), [*path, name])  # type: ignore[attr-defined]

    walk(typer.main.get_command(app), [])
    return found


def test_every_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = _leaf_commands()
    assert {"qr sheet", "rerate", "geo locate", "open311 key create"} <= set(commands)
    missing = [c for c in commands if f"`gongping {c}" not in readme]
    assert not missing, f"README.md lacks the commands: {', '.join(missing)}"


def test_the_readme_links_only_to_the_repository() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "../shared" not in readme
    for doc in ("docs/MISSION.md", "docs/DESIGN.md", "docs/DEVELOPING.md", "docs/DEPLOY.md"):
        assert f"]({doc})" in readme and (ROOT / doc).is_file(), doc
    for topic in ("/api/v1/auth/token", "Gongping2026demo", "/api/v1/qr/{kind}/{id}", "gongping qr sheet"):
        assert topic in readme, topic


def test_the_demo_password_in_the_readme_is_the_demo_password() -> None:
    from backend.demo import DEMO_PASSWORD

    assert f"`{DEMO_PASSWORD}`" in (ROOT / "README.md").read_text(encoding="utf-8")
