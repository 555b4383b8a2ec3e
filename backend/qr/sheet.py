"""Printable sheets of a market's stall codes (segno), as a PNG or a multi-page A4 PDF, labelled for people.

Chinese labels need a font with CJK glyphs: ``settings.qr_sheet_font``, else Noto Sans SC, which the project
installs as a dependency (``pylopdf-fonts-zh-cn``, SIL OFL 1.1), else one fontconfig knows for ``:lang=zh``, else
a few well-known paths. Without any, labels fall back to ASCII (the stall number and "Stall"/"Market"), which
the caller is told about, so a sheet can always be printed. A sticker hangs in public: names on it are masked as
on the public page (``backend.common.masking``).
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import segno
from PIL import Image, ImageDraw, ImageFont
from sqlmodel import Session, col, select

from backend.common.masking import public_operator_name, public_stall_name
from backend.config import get_settings
from backend.operators.models import Operator, Sector, Stall
from backend.qr import service

#: A4 at 200 dpi: modules of a version-7 code come out at 0.5 mm, well within any phone camera's reach.
PAGE_SIZE = (1654, 2339)
DPI = 200
COLUMNS = 3
ROWS = 4
MARGIN = 60
QR_SCALE = 7

# Where Debian, Fedora, Alpine and macOS keep common CJK fonts, for machines without fontconfig.
_KNOWN_CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/google-droid/DroidSansFallback.ttf",
    "/System/Library/Fonts/PingFang.ttc",
)


class SheetFormat(StrEnum):
    """Output formats of a sheet."""

    pdf = "pdf"
    png = "png"


@dataclass(frozen=True)
class StallCode:
    """One sticker: the stall's code URL and what is printed under it."""

    stall_id: int
    url: str
    heading: str
    number: str
    name: str


@dataclass(frozen=True)
class Sheet:
    """A rendered sheet and whether its labels could be set in Chinese."""

    data: bytes
    pages: int
    codes: int
    cjk_font: Path | None


def _fontconfig_cjk() -> list[Path]:
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return []
    try:
        out = subprocess.run(
            [fc_list, ":lang=zh", "file"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    paths = [Path(line.split(":", 1)[0].strip()) for line in out.splitlines() if line.strip()]
    # Regular weights of sans faces first: they stay legible when printed small.
    return sorted(
        (p for p in paths if p.suffix.lower() in (".ttf", ".otf", ".ttc")),
        key=lambda p: ("bold" in p.name.lower(), "sans" not in p.name.lower(), str(p)),
    )


def _bundled_cjk() -> list[Path]:
    """Noto Sans SC from the project's own dependency; absent only if it was uninstalled."""
    try:
        import pylopdf_fonts_zh_cn
    except ImportError:
        return []
    return [pylopdf_fonts_zh_cn.sans_path()]


def find_cjk_font() -> Path | None:
    """A font file with Chinese glyphs, or None if this machine has none."""
    configured = get_settings().qr_sheet_font
    if configured is not None and configured.is_file():
        return configured
    for candidate in [*_bundled_cjk(), *_fontconfig_cjk(), *map(Path, _KNOWN_CJK_FONTS)]:
        if candidate.is_file():
            return candidate
    return None


def _ascii(text: str) -> str:
    return text if text.isascii() else ""


def market_codes(session: Session, market_id: int, *, cjk: bool) -> tuple[Operator, list[StallCode]]:
    """The market and one sticker per active stall, in stall-number order; LookupError if not a market."""
    market = session.get(Operator, market_id)
    if market is None or market.sector != Sector.market:
        raise LookupError(market_id)
    stalls = session.execute(
        select(Stall)
        .where(col(Stall.market_id) == market_id, col(Stall.is_active).is_(True))
        .order_by(col(Stall.number))
    ).scalars()
    codes = []
    for stall in stalls:
        code = service.code_of(stall)
        market_name = public_operator_name(market.name, market.legal_representative)
        stall_name = public_stall_name(stall.name, stall.holder_name)
        if cjk:
            heading, number, name = market_name, f"摊位 {stall.number}", stall_name
        else:
            heading = _ascii(market_name) or f"Market #{market.id}"
            number = f"Stall {_ascii(stall.number) or f'#{stall.id}'}"
            name = _ascii(stall_name)
        codes.append(
            StallCode(stall_id=stall.id or 0, url=code.url, heading=heading, number=number, name=name)
        )
    return market, codes


def _font(path: Path | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if path is not None:
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def _qr_image(url: str) -> Image.Image:
    buffer = io.BytesIO()
    segno.make(url, error="m", micro=False).save(buffer, kind="png", scale=QR_SCALE, border=4)
    buffer.seek(0)
    with Image.open(buffer) as im:
        return im.convert("L")


def _centred(
    draw: ImageDraw.ImageDraw,
    text: str,
    centre_x: int,
    top: int,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    width: int,
) -> None:
    if not text:
        return
    # Shorten what does not fit rather than overflow into the next sticker.
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    draw.text((centre_x, top), text, fill=0, font=font, anchor="ma")


def _cell(code: StallCode, size: tuple[int, int], font_path: Path | None, cjk: bool) -> Image.Image:
    width, height = size
    cell = Image.new("L", size, 255)
    draw = ImageDraw.Draw(cell)
    draw.rectangle((0, 0, width - 1, height - 1), outline=200, width=2)  # a cutting guide
    qr = _qr_image(code.url)
    cell.paste(qr, ((width - qr.width) // 2, 40))
    y = 40 + qr.height + 6
    inner = width - 30
    _centred(draw, code.number, width // 2, y, _font(font_path, 38), inner)
    _centred(draw, code.name, width // 2, y + 48, _font(font_path, 26), inner)
    _centred(draw, code.heading, width // 2, 12, _font(font_path, 22), inner)
    footer = "扫码查询计量诚信信息 · 投诉举报" if cjk else "Scan: metrology integrity / complaints"
    _centred(draw, footer, width // 2, height - 34, _font(font_path, 20), inner)
    return cell


def render_pages(
    codes: Sequence[StallCode], *, font_path: Path | None, rows_per_page: int | None = ROWS
) -> list[Image.Image]:
    """Lay the stickers out on A4 pages (or, with ``rows_per_page=None``, on one tall page)."""
    cjk = font_path is not None
    page_w = PAGE_SIZE[0]
    cell_w = (page_w - 2 * MARGIN) // COLUMNS
    cell_h = (PAGE_SIZE[1] - 2 * MARGIN) // ROWS
    per_page = COLUMNS * rows_per_page if rows_per_page else max(1, len(codes))
    pages: list[Image.Image] = []
    for start in range(0, max(1, len(codes)), per_page):
        chunk = codes[start : start + per_page]
        rows = rows_per_page or max(1, math.ceil(len(chunk) / COLUMNS))
        page_h = PAGE_SIZE[1] if rows_per_page else 2 * MARGIN + rows * cell_h
        page = Image.new("L", (page_w, page_h), 255)
        for i, code in enumerate(chunk):
            row, column = divmod(i, COLUMNS)
            page.paste(
                _cell(code, (cell_w, cell_h), font_path, cjk),
                (MARGIN + column * cell_w, MARGIN + row * cell_h),
            )
        pages.append(page)
    return pages


def render(codes: Sequence[StallCode], fmt: SheetFormat, *, font_path: Path | None) -> Sheet:
    """The sheet as PDF (A4 pages) or PNG (one tall page)."""
    buffer = io.BytesIO()
    if fmt is SheetFormat.pdf:
        pages = render_pages(codes, font_path=font_path)
        pages[0].save(buffer, "PDF", save_all=True, append_images=pages[1:], resolution=DPI)
    else:
        pages = render_pages(codes, font_path=font_path, rows_per_page=None)
        pages[0].save(buffer, "PNG", optimize=True, dpi=(DPI, DPI))
    return Sheet(data=buffer.getvalue(), pages=len(pages), codes=len(codes), cjk_font=font_path)
