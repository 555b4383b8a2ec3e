"""App teams generate their clients from ``openapi/openapi.json``: every generator they use runs clean.

openapi-generator (the PyPI package ships the jar; Java runs it) for Kotlin, Swift, Dart and TypeScript, and
openapi-python-client; a warning outside ``allowed_warnings.ALLOWED`` fails. The TypeScript client must
type-check with ``tsc --noEmit`` (TypeScript is installed from npm into ``var/generators/node``, once).
Marked ``generators``: they touch no database, so they run on the SQLite pass of ``make test`` only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backend.contract import PACKAGE_NAME
from tests.contract.generators.allowed_warnings import unexpected

ROOT = Path(__file__).resolve().parents[3]
DOCUMENT = ROOT / "openapi" / "openapi.json"
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
NODE_DIR = ROOT / "var" / "generators" / "node"
TYPESCRIPT = "typescript@5.9"

pytestmark = [
    pytest.mark.generators,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("java") is None, reason="openapi-generator needs Java (default-jre-headless)"
    ),
]

#: openapi-generator's generators, with the options that give each a proper package name.
GENERATORS: dict[str, str] = {
    "kotlin": f"packageName=cn.gongping.client,artifactId={PACKAGE_NAME.replace('_', '-')}",
    "swift6": "projectName=GongpingClient",
    "dart": f"pubName={PACKAGE_NAME}",
    "typescript-fetch": f"npmName={PACKAGE_NAME.replace('_', '-')},supportsES6=true",
}


def _run(command: list[str], cwd: Path | None = None, timeout: int = 600) -> str:
    env = {**os.environ, "JAVA_TOOL_OPTIONS": "-Xmx1g"}
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{output[-4000:]}"
    return output


def _java_warnings(output: str) -> list[str]:
    return [line for line in output.splitlines() if " WARN " in line or " ERROR " in line]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clients")


@pytest.mark.parametrize("generator", sorted(GENERATORS))
def test_openapi_generator_runs_clean(generator: str, generated: Path) -> None:
    output = _run(
        [
            str(BIN / "openapi-generator-cli"),
            "generate",
            "-i",
            str(DOCUMENT),
            "-g",
            generator,
            "-o",
            str(generated / generator),
            "--additional-properties",
            GENERATORS[generator],
        ]
    )
    assert unexpected(_java_warnings(output)) == []
    assert any((generated / generator).rglob("*Api*")), f"{generator} wrote no API classes"


def test_typescript_client_type_checks(generated: Path) -> None:
    client = generated / "typescript-fetch"
    if not client.exists():
        _run(
            [
                str(BIN / "openapi-generator-cli"),
                "generate",
                "-i",
                str(DOCUMENT),
                "-g",
                "typescript-fetch",
                "-o",
                str(client),
                "--additional-properties",
                GENERATORS["typescript-fetch"],
            ]
        )
    tsc = NODE_DIR / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        npm = shutil.which("npm")
        assert npm is not None, "npm is needed to install TypeScript"
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        _run([npm, "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", TYPESCRIPT])
    sources = sorted(str(p) for p in client.rglob("*.ts"))
    assert sources
    done = subprocess.run(
        [
            str(tsc),
            "--noEmit",
            "--strict",
            "--target",
            "es2020",
            "--lib",
            "es2020,dom",
            "--moduleResolution",
            "node",
            *sources,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    # Every operation has one request media type, so typescript-fetch writes every model it imports.
    assert done.returncode == 0 and "error TS" not in output, output[-4000:]


def test_openapi_python_client_runs_clean(generated: Path) -> None:
    output = _run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            str(DOCUMENT),
            "--config",
            str(HERE / "openapi-python-client.yaml"),
            "--output-path",
            str(generated / "python"),
            "--meta",
            "none",
        ]
    )
    warnings = [
        line for line in output.splitlines() if line.startswith(("WARNING", "Warning", "Unable", "Cannot"))
    ]
    assert unexpected(warnings) == [], output[-4000:]
    assert (generated / "python" / "api" / "me" / "complaints_create.py").exists()
