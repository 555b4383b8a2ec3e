"""Migration files are named so that listing them shows the order they apply in."""

from __future__ import annotations

import ast
from pathlib import Path

VERSIONS = Path(__file__).resolve().parents[2] / "backend" / "migrations" / "versions"


def _revisions() -> dict[str, tuple[str, tuple[str, ...]]]:
    """File name → (revision, its parents), read from the module-level assignments."""
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for path in sorted(VERSIONS.glob("*.py")):
        values: dict[str, object] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
                target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
                if isinstance(target, ast.Name) and target.id in {"revision", "down_revision"}:
                    values[target.id] = ast.literal_eval(node.value)
        down = values.get("down_revision")
        parents = () if down is None else (down,) if isinstance(down, str) else tuple(down)  # type: ignore[arg-type]
        found[path.name] = (str(values["revision"]), parents)
    return found


def test_file_names_list_the_migrations_in_order() -> None:
    revisions = _revisions()
    depth: dict[str, int] = {}

    def depth_of(revision: str) -> int:
        if revision not in depth:
            parents = next(p for r, p in revisions.values() if r == revision)
            depth[revision] = 1 + max((depth_of(p) for p in parents), default=0)
        return depth[revision]

    names = sorted(revisions)
    assert len(names) >= 9 and all(name[:4].isdigit() for name in names)
    depths = [depth_of(revisions[name][0]) for name in names]
    assert depths == sorted(depths), list(zip(names, depths, strict=True))
