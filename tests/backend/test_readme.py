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
