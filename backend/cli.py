"""The ``gongping`` command: serve, worker, beat, relay, run, migrate, demo, import, openapi, audit, rerate, open311."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from backend.auth.scope import Scope
from backend.config import ROOT, get_settings
from backend.hooks import install as install_hooks

app = typer.Typer(
    help="公平 Gongping: 服务业诚信计量监督管理 / integrity metrology supervision", no_args_is_help=True
)
import_app = typer.Typer(help="批量导入 / bulk import from CSV", no_args_is_help=True)
audit_app = typer.Typer(help="审计日志 / the audit log", no_args_is_help=True)
qr_app = typer.Typer(help="二维码 / QR codes", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(audit_app, name="audit")
app.add_typer(qr_app, name="qr")
geo_app = typer.Typer(help="辖区边界与定位 / boundaries and point location", no_args_is_help=True)
app.add_typer(geo_app, name="geo")
open311_app = typer.Typer(help="Open311 GeoReport v2 接口 / the Open311 interface", no_args_is_help=True)
open311_key_app = typer.Typer(help="Open311 客户端密钥 / civic-tech client API keys", no_args_is_help=True)
open311_app.add_typer(open311_key_app, name="key")
app.add_typer(open311_app, name="open311")
media_app = typer.Typer(help="照片与文件存储 / media storage", no_args_is_help=True)
app.add_typer(media_app, name="media")
console = Console(stderr=True)
# The CLI is an entry point: its commands' sessions keep the public store current like the API's.
install_hooks()
OPENAPI_PATH = ROOT / "openapi" / "openapi.json"


@app.command()
def migrate() -> None:
    """Role ``migrate``: upgrade the schema and load reference data; run once per upgrade, before new code."""
    from backend.migrate import upgrade

    upgrade()
    console.print("[green]数据库已是最新 / database is up to date[/green]")


@app.command()
def demo(
    accounts_json: Annotated[
        bool, typer.Option("--accounts-json", help="print the demo accounts as JSON")
    ] = False,
) -> None:
    """Seed the demo county once (a second run changes nothing)."""
    from backend.db import session_scope
    from backend.demo import already_seeded, as_dicts, seed

    if get_settings().environment == "production":
        console.print("[red]生产环境不能写入演示数据 / refusing to seed demo data in production[/red]")
        raise typer.Exit(2)
    with session_scope() as session:
        fresh = not already_seeded(session)
        accounts = seed(session)
    if accounts_json:
        typer.echo(json.dumps(as_dicts(accounts), ensure_ascii=False, indent=2))
    else:
        console.print(
            "演示数据已写入 / demo data seeded" if fresh else "演示数据已存在 / demo data already present"
        )


_HEALTH_PORT = typer.Option(
    "--health-port",
    min=1,
    max=65535,
    help="serve GET /livez and /readyz on this port (GONGPING_HEALTH_PORT; see docs/DEPLOY.md)",
)


def _set_health_port(port: int | None) -> None:
    """Hand ``--health-port`` to this process's settings and to a process it becomes (``exec``)."""
    if port is not None:
        os.environ["GONGPING_HEALTH_PORT"] = str(port)
        get_settings.cache_clear()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    workers: Annotated[int, typer.Option(min=1)] = 1,
    graceful: Annotated[
        int, typer.Option("--graceful-seconds", min=1, help="on SIGTERM, how long requests may finish")
    ] = 30,
) -> None:
    """Role ``serve``: the HTTP API (any number, behind a load balancer). Health: GET /healthz on its port."""
    import uvicorn

    s = get_settings()
    # proxy_headers off: uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1; only
    # GONGPING_TRUSTED_PROXIES decides (backend/proxies.py). On SIGTERM uvicorn stops accepting connections
    # and lets requests under way finish for up to ``graceful`` seconds.
    uvicorn.run(
        "backend.asgi:app",
        host=host or s.host,
        port=port or s.port,
        workers=workers,
        log_level="info",
        proxy_headers=False,
        timeout_graceful_shutdown=graceful,
    )


def _celery_args(*extra: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "workers.celery_app:celery_app", *extra]


def _worker_args(concurrency: int, name: str | None = None) -> list[str]:
    args = ["worker", "-l", "INFO", "-c", str(concurrency), "-Q", "gongping"]
    if name:
        # Several workers on one machine need names of their own (Celery warns of duplicate node names).
        args += ["-n", f"{name}@%h"]
    if get_settings().uses_embedded_broker:
        args += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return _celery_args(*args)


def _beat_args() -> list[str]:
    schedule = get_settings().broker_dir / "celerybeat-schedule"
    schedule.parent.mkdir(parents=True, exist_ok=True)
    scheduler = "workers.beat_scheduler:LeasedScheduler"
    return _celery_args("beat", "-l", "INFO", "-s", str(schedule), "-S", scheduler)


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1)] = 2,
    name: Annotated[
        str | None, typer.Option("--name", help="node name (NAME@host); one per worker on a machine")
    ] = None,
    health_port: Annotated[int | None, _HEALTH_PORT] = None,
) -> None:
    """Role ``worker``: a Celery worker (any number, on any node). SIGTERM: finish the tasks under way, exit."""
    _set_health_port(health_port)
    os.execv(sys.executable, _worker_args(concurrency, name))


@app.command()
def beat(health_port: Annotated[int | None, _HEALTH_PORT] = None) -> None:
    """Role ``beat``: the periodic sweeps. Start it on two nodes: a database lease lets one send at a time."""
    _set_health_port(health_port)
    os.execv(sys.executable, _beat_args())


@app.command()
def relay(health_port: Annotated[int | None, _HEALTH_PORT] = None) -> None:
    """Role ``relay``: publish committed outbox events to the workers (any number: rows are locked per pass)."""
    from backend.outbox.relay import run_forever
    from backend.roles.probes import Heartbeat, Probes, serve_configured

    _set_health_port(health_port)
    s = get_settings()
    heartbeat = Heartbeat()
    probes = Probes("relay", heartbeat=heartbeat, stale_after=s.health_stale_seconds)
    stop = False

    def _stop(*_args: object) -> None:
        nonlocal stop
        stop = True
        probes.stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server = serve_configured(probes)
    probes.started = True
    console.print("outbox relay: 已启动 / started")
    run_forever(
        poll_seconds=s.relay_poll_seconds, batch=s.relay_batch_size, stop=lambda: stop, turned=heartbeat.beat
    )
    if server is not None:
        server.shutdown()
    console.print("outbox relay: 已停止 / stopped")


@app.command()
def run() -> None:
    """Start everything: migrate, seed the demo once, then API + worker + beat + relay until Ctrl-C.

    A child that dies is restarted with backoff (``backend.supervisor``); Ctrl-C or SIGTERM stops them all.
    """
    from backend.db import session_scope
    from backend.demo import already_seeded, seed
    from backend.migrate import upgrade
    from backend.supervisor import Supervisor

    s = get_settings()
    upgrade()
    with session_scope() as session:
        fresh = not already_seeded(session)
        accounts = seed(session)
    me = [sys.executable, "-m", "backend.cli"]
    children = {
        "api": [
            sys.executable,
            *("-m", "uvicorn", "backend.asgi:app", "--host", s.host, "--port", str(s.port)),
            "--no-proxy-headers",  # GONGPING_TRUSTED_PROXIES decides, not uvicorn (backend/proxies.py)
        ],
        "worker": _worker_args(2),
        "beat": _beat_args(),
        "relay": [*me, "relay"],
    }
    stopping = False

    def _stop(*_args: object) -> None:
        nonlocal stopping
        stopping = True

    # Before the children start: a SIGTERM from now on stops them instead of orphaning them.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    supervisor = Supervisor(children, cwd=ROOT, log=console.print)
    supervisor.start()
    base = f"http://{s.host}:{s.port}"
    console.rule("公平 Gongping")
    console.print(f"API 文档 / API docs: [bold]{base}/docs[/bold]   健康检查 / health: {base}/healthz")
    console.print(f"监管工作台 / bureau workbench: [bold]{base}/workbench/[/bold]   (staff_xihu)")
    console.print(("已写入演示数据" if fresh else "演示数据已存在") + " / demo accounts (password for all):")
    for account in accounts:
        console.print(f"  {account.username:<20} {account.role:<12} {account.jurisdiction_code or '':<7}")
    console.print(f"  密码 / password: {accounts[0].password if accounts else ''}")
    console.print("按 Ctrl-C 停止 / press Ctrl-C to stop")
    try:
        while not stopping:
            supervisor.step()
            time.sleep(0.3)
    finally:
        console.print("正在停止 / stopping")
        supervisor.stop()
        console.print("已停止 / stopped")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _scope_for(jurisdiction: str | None, actor_username: str | None) -> Scope:
    from sqlmodel import col, select

    from backend.audit.service import SYSTEM
    from backend.auth.models import Account
    from backend.auth.scope import Scope
    from backend.db import session_scope
    from backend.jurisdictions.models import Jurisdiction

    with session_scope() as session:
        actor = SYSTEM
        if actor_username:
            found = session.execute(
                select(Account).where(col(Account.username) == actor_username)
            ).scalar_one_or_none()
            if found is None:
                console.print(f"[red]账号不存在 / no such account: {actor_username}[/red]")
                raise typer.Exit(2)
            actor = found
        path = "/"
        if jurisdiction:
            j = session.get(Jurisdiction, jurisdiction)
            if j is None:
                console.print(f"[red]行政区划不存在 / unknown division: {jurisdiction}[/red]")
                raise typer.Exit(2)
            path = j.path
        return Scope(actor, path)


def _count_rows(path: Path) -> int:
    with path.open("rb") as fh:
        return max(0, sum(1 for _ in fh) - 1)


def _run_import(
    kind: str, path: Path, jurisdiction: str | None, actor: str | None, report: Path | None
) -> None:
    from backend.db import session_scope
    from backend.operators import importer

    scope = _scope_for(jurisdiction, actor)
    total = _count_rows(path)
    func = importer.import_operators if kind == "operators" else importer.import_instruments
    with _progress() as progress, path.open(encoding="utf-8-sig", newline="") as fh:
        task = progress.add_task(f"导入 / importing {kind}", total=total)
        with session_scope() as session:
            result = func(session, fh, scope=scope, progress=lambda n: progress.advance(task, n))
    console.print(
        f"新增 created {result.created} · 更新 updated {result.updated} · 未变 unchanged {result.unchanged}"
        f" · 错误 errors {len(result.errors)}"
    )
    if result.errors:
        target = report or path.with_suffix(".errors.csv")
        import csv

        with target.open("w", encoding="utf-8-sig", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["行号 row", "错误代码 code", "说明 message"])
            writer.writerows([e.row, e.code, e.message] for e in result.errors)
        console.print(f"逐行错误报告 / per-row error report: {target}")


_JUR = typer.Option("--jurisdiction", "-j", help="limit to this division (GB/T 2260 code)")
_ACTOR = typer.Option("--actor", help="username recorded in the audit log (default: system)")
_REPORT = typer.Option("--report", help="where to write the per-row error report")


@import_app.command("operators")
def import_operators(
    path: Path,
    jurisdiction: Annotated[str | None, _JUR] = None,
    actor: Annotated[str | None, _ACTOR] = None,
    report: Annotated[Path | None, _REPORT] = None,
) -> None:
    """Import operators from CSV (idempotent on the Unified Social Credit Code)."""
    _run_import("operators", path, jurisdiction, actor, report)


@import_app.command("instruments")
def import_instruments(
    path: Path,
    jurisdiction: Annotated[str | None, _JUR] = None,
    actor: Annotated[str | None, _ACTOR] = None,
    report: Annotated[Path | None, _REPORT] = None,
) -> None:
    """Import instruments and their latest verification from CSV (idempotent on operator + serial)."""
    _run_import("instruments", path, jurisdiction, actor, report)


def openapi_document() -> str:
    """The app's OpenAPI document as committed (stable key order, UTF-8)."""
    from backend.main import create_app

    return json.dumps(create_app().openapi(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


@app.command()
def openapi(
    check: Annotated[bool, typer.Option("--check", help="fail if the committed file is stale")] = False,
) -> None:
    """Write openapi/openapi.json from the app (or check it is current)."""
    document = openapi_document()
    if check:
        current = OPENAPI_PATH.read_text(encoding="utf-8") if OPENAPI_PATH.exists() else ""
        if current != document:
            console.print("[red]openapi/openapi.json 已过期，请运行 gongping openapi / is stale[/red]")
            raise typer.Exit(1)
        console.print("openapi/openapi.json is current")
        return
    OPENAPI_PATH.parent.mkdir(parents=True, exist_ok=True)
    OPENAPI_PATH.write_text(document, encoding="utf-8")
    console.print(f"wrote {OPENAPI_PATH}")


@app.command()
def rerate(
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="rating date YYYY-MM-DD (default: today, bureau time)")
    ] = None,
    batch: Annotated[int, typer.Option(min=100, help="operator ids per transaction")] = 20_000,
) -> None:
    """Re-rate every operator now (what the nightly beat task does, in this process)."""
    from datetime import date

    from backend.records.rating import rerate_all

    day = date.fromisoformat(as_of) if as_of else None
    with _progress() as progress:
        task = progress.add_task("重新评级 / re-rating", total=None)

        def _advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = rerate_all(as_of=day, batch=batch, progress=_advance)
    console.print(
        f"经营者 operators {report.operators} · 重算 recomputed {report.candidates} · 写入 written "
        f"{report.written} · 等级变化 class changes {report.class_changes} · 冲突 conflicts {report.conflicts}"
    )
    if report.mismatches:
        console.print(f"[red]集合计算与逐户计算不一致 / set-based mismatches: {report.mismatches}[/red]")
        raise typer.Exit(1)


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit chain: any altered, inserted or deleted entry is reported (exit 1)."""
    from backend.audit.service import verify_chain
    from backend.db import session_scope

    with session_scope() as session:
        checked, problems = verify_chain(session)
    if problems:
        for p in problems:
            console.print(f"[red]{p.kind}[/red] seq={p.seq}: {p.detail}")
        console.print(
            f"[red]审计链校验失败 / audit chain broken: {len(problems)} problem(s) in {checked} entries[/red]"
        )
        raise typer.Exit(1)
    console.print(f"[green]审计链完整 / audit chain intact: {checked} entries[/green]")


@qr_app.command("sheet")
def qr_sheet(
    market: Annotated[int, typer.Option("--market", help="the market operator's id")],
    fmt: Annotated[str, typer.Option("--format", help="pdf (A4 pages) or png (one sheet)")] = "pdf",
    out: Annotated[
        Path | None, typer.Option("--out", help="output file (default market-ID-qr.FORMAT)")
    ] = None,
) -> None:
    """Print a market's stall QR codes, labelled with stall numbers and names."""
    from backend.db import session_scope
    from backend.qr.sheet import SheetFormat, find_cjk_font, market_codes, render

    if fmt not in {f.value for f in SheetFormat}:
        console.print(f"[red]不支持的格式 / unsupported format: {fmt} (pdf, png)[/red]")
        raise typer.Exit(2)
    font = find_cjk_font()
    with session_scope() as session:
        try:
            market_row, codes = market_codes(session, market, cjk=font is not None)
        except LookupError:
            console.print(f"[red]市场不存在 / no market with id {market}[/red]")
            raise typer.Exit(2) from None
    sheet = render(codes, SheetFormat(fmt), font_path=font)
    target = out or Path(f"market-{market}-qr.{fmt}")
    target.write_bytes(sheet.data)
    if font is None:
        console.print(
            "[yellow]未找到中文字体，标签以 ASCII 印制（设置 GONGPING_QR_SHEET_FONT 或安装 fonts-noto-cjk）"
            " / no CJK font found: labels are ASCII (set GONGPING_QR_SHEET_FONT or install a CJK font)[/yellow]"
        )
    console.print(
        f"{market_row.name}: {sheet.codes} 个摊位码 / stall codes, {sheet.pages} 页 / page(s) → {target}"
    )


@geo_app.command("build")
def geo_build() -> None:
    """Convert the configured boundaries into the fast cache (a bad source never replaces a good cache)."""
    from backend.jurisdictions import locator

    started = time.perf_counter()
    locator.reset()
    loaded = locator.boundaries()
    console.print(
        f"边界已就绪 / boundaries ready: {len(loaded.index.codes)} counties from {loaded.index.source}"
        f" in {time.perf_counter() - started:.1f} s"
    )
    for note in loaded.index.notes:
        console.print(f"  · {note}")


@geo_app.command("locate")
def geo_locate(
    lon: float,
    lat: float,
    coord_system: Annotated[str, typer.Option("--coord-system", "-c", help="wgs84 | gcj02 | bd09")] = "wgs84",
    accuracy_m: Annotated[float | None, typer.Option("--accuracy", help="accuracy radius in metres")] = None,
) -> None:
    """Which county a point falls in, by the routing rules, with the reason."""
    from backend.jurisdictions import locator
    from geo.errors import GeoInputError

    try:
        found = locator.locate(lon, lat, coord_system, accuracy_m)
    except GeoInputError as exc:
        console.print(f"[red]{exc.message_zh} / {exc}[/red]")
        raise typer.Exit(2) from None
    typer.echo(
        json.dumps(
            {"code": found.code, "wgs84": [found.lon, found.lat], **found.decision.as_dict()},
            ensure_ascii=False,
            indent=2,
        )
    )


@geo_app.command("check")
def geo_check() -> None:
    """Report boundary codes with no current GB/T 2260 code, and counties with no boundary (exit 1 if any)."""
    from backend.jurisdictions import locator

    norm = locator.boundaries().normalisation
    for alias in sorted(norm.aliased):
        console.print(f"映射 / mapped {alias} → {norm.mapping[alias]} ({norm.aliased[alias].reason})")
    # Hong Kong, Macao and Taiwan are outside the mainland bureaus' jurisdiction (Art. 4): listed, not a fault.
    outside = [u for u in norm.unmapped if u.code[:2] in ("71", "81", "82")]
    unmapped = [u for u in norm.unmapped if u.code[:2] not in ("71", "81", "82")]
    if outside:
        console.print(
            f"港澳台边界不在内地辖区内 / {len(outside)} Hong Kong, Macao and Taiwan codes are outside scope"
        )
    for u in unmapped:
        console.print(f"[yellow]未映射 / unmapped {u.code}: {u.reason} {u.detail}[/yellow]")
    for code in norm.uncovered:
        console.print(f"[yellow]无边界 / no boundary for county {code}[/yellow]")
    console.print(
        f"{len(norm.mapping)} codes mapped, {len(norm.aliased)} through the reviewed alias table, "
        f"{len(unmapped)} unmapped, {len(norm.uncovered)} counties without a boundary"
    )
    if unmapped or norm.uncovered:
        raise typer.Exit(1)


@open311_key_app.command("create")
def open311_key_create(
    name: Annotated[str, typer.Argument(help="the client's name, e.g. a civic-tech group")],
) -> None:
    """Issue an API key for a civic-tech client; the key is printed once and stored only as a hash."""
    from backend.audit.service import SYSTEM
    from backend.db import session_scope
    from backend.errors import AppError
    from backend.open311 import service

    try:
        with session_scope() as session:
            client, api_key = service.create_client(session, name=name, actor=SYSTEM)
    except AppError as exc:
        console.print(f"[red]{exc.message_zh} / {exc.message_en}[/red]")
        raise typer.Exit(1) from None
    console.print(
        f"已为 {client.name} 签发密钥（仅显示一次）/ key issued for {client.name} (shown once), "
        f"prefix {client.key_prefix}:"
    )
    typer.echo(api_key)


@open311_key_app.command("list")
def open311_key_list() -> None:
    """List the clients (name, key prefix, active) as JSON lines; keys themselves are never stored."""
    from backend.db import session_scope
    from backend.open311 import service

    with session_scope() as session:
        for client in service.list_clients(session):
            typer.echo(service.client_row(client))


@open311_key_app.command("revoke")
def open311_key_revoke(name: Annotated[str, typer.Argument(help="the client's name")]) -> None:
    """Revoke a client's key (and the account its complaints are filed under)."""
    from backend.audit.service import SYSTEM
    from backend.db import session_scope
    from backend.errors import AppError
    from backend.open311 import service

    try:
        with session_scope() as session:
            service.revoke_client(session, name=name, actor=SYSTEM)
    except AppError as exc:
        console.print(f"[red]{exc.message_zh} / {exc.message_en}[/red]")
        raise typer.Exit(1) from None
    console.print(f"已停用 / revoked: {name}")


@media_app.command("migrate")
def media_migrate(
    to: Annotated[str, typer.Option("--to", help="target store: s3://bucket/prefix (or a directory)")],
    source: Annotated[
        str | None, typer.Option("--from", help="source store (default: GONGPING_MEDIA_URL, else media_dir)")
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, max=64, help="objects copied at once")] = 4,
) -> None:
    """Copy a media store to another (a local directory to an object store); resumable, verified by SHA-256.

    The target's client settings are the GONGPING_MEDIA_S3_* ones. Run it again after an interruption: objects
    already copied (same SHA-256) are skipped. Exits non-zero if any object failed.
    """
    from backend.config import parse_media_url
    from backend.media.factory import storage_at
    from backend.media.migrate import Outcome, migrate
    from backend.media.storage import MediaUnavailable

    settings = get_settings()
    try:
        source_at = parse_media_url(source if source is not None else settings.media_url, settings.media_dir)
        target_at = parse_media_url(to, settings.media_dir)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if source_at == target_at:
        console.print("[red]源与目标相同 / source and target are the same store[/red]")
        raise typer.Exit(2)
    from_store, to_store = storage_at(source_at, settings), storage_at(target_at, settings)
    console.print(f"从 / from {from_store!r}\n到 / to   {to_store!r}")
    try:
        keys = sum(1 for _ in from_store.keys())  # noqa: SIM118 - a store, not a dict
        with _progress() as progress:
            task = progress.add_task("复制 / copying", total=keys)
            failed = progress.add_task("[red]失败 / failed", total=None, visible=False)

            def _advance(_key: str, outcome: Outcome) -> None:
                progress.advance(task)
                if outcome is Outcome.failed:
                    progress.update(failed, visible=True)
                    progress.advance(failed)

            report = migrate(from_store, to_store, jobs=jobs, on_object=_advance)
    except MediaUnavailable as exc:
        console.print(f"[red]存储不可用 / store unavailable: {exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(
        f"已复制 copied {report.copied} · 已存在 already there {report.present} · 已修复 repaired "
        f"{report.repaired} · 失败 failed {len(report.failures)} · {report.bytes_copied / 1e6:.1f} MB"
    )
    for key, why in report.failures[:50]:
        console.print(f"[red]✗ {key}: {why}[/red]")
    if len(report.failures) > 50:
        console.print(f"[red]… {len(report.failures) - 50} more[/red]")
    if report.stopped:
        console.print(f"[red]已中止，可重新运行以继续 / stopped; run again to resume: {report.stopped}[/red]")
    if not report.ok:
        raise typer.Exit(1)
    console.print("[green]全部对象已复制并校验 / every object copied and verified (SHA-256)[/green]")


account_app = typer.Typer(help="工作人员账号 / bureau accounts", no_args_is_help=True)
app.add_typer(account_app, name="account")
#: The accounts a bureau creates from the command line (the first admin, staff, read-only auditors).
_CLI_ROLES = ("admin", "staff", "auditor")


@account_app.command("create")
def account_create(
    username: Annotated[str, typer.Argument(help="sign-in name")],
    role: Annotated[str, typer.Option(help="admin, staff or auditor (审计员, read-only)")] = "staff",
    jurisdiction: Annotated[
        str | None, typer.Option(help="6-digit division code (staff and auditors)")
    ] = None,
    display_name: Annotated[str, typer.Option(help="name shown in the workbench")] = "",
    password: Annotated[
        str,
        typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, envvar="GONGPING_NEW_PASSWORD"),
    ] = "",
) -> None:
    """Create an admin, staff or auditor account (audited; the password follows the API's policy)."""
    from backend.audit.service import SYSTEM
    from backend.auth import service
    from backend.auth.models import Role
    from backend.db import session_scope
    from backend.errors import AppError
    from backend.jurisdictions.models import Jurisdiction

    if role not in _CLI_ROLES:
        console.print(f"[red]角色须为 / role must be one of {', '.join(_CLI_ROLES)}[/red]")
        raise typer.Exit(2)
    if (role == "admin") != (jurisdiction is None):
        console.print(
            "[red]员工和审计员须指定辖区，管理员不指定 / staff and auditors need --jurisdiction, admins none[/red]"
        )
        raise typer.Exit(2)
    try:
        with session_scope() as session:
            if jurisdiction is not None and session.get(Jurisdiction, jurisdiction) is None:
                console.print(f"[red]行政区划代码不存在 / unknown division code {jurisdiction}[/red]")
                raise typer.Exit(1)
            account = service.create_account(
                session,
                actor=SYSTEM,
                username=username,
                password=password,
                role=Role(role),
                display_name=display_name,
                jurisdiction_code=jurisdiction,
            )
            created = (account.id, account.username, account.role.value, account.jurisdiction_code)
    except AppError as exc:
        console.print(f"[red]{exc.message_zh} / {exc.message_en}[/red]")
        raise typer.Exit(1) from None
    console.print(
        f"已创建账号 / account created: id {created[0]} {created[1]} ({created[2]}, {created[3] or '全国'})"
    )


if __name__ == "__main__":
    app()
