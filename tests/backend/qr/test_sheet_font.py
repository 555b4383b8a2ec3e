"""The printed sheet sets Chinese names with the font the project installs, on a machine with no system font."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFont
from sqlmodel import Session

from backend.auth.models import Role
from backend.config import get_settings
from backend.operators.models import Sector
from backend.qr import sheet
from tests.factories import COUNTY_A, make_account, make_operator, make_stall

#: A code point no font draws: what a missing glyph (tofu) looks like in the font under test.
NO_GLYPH = "\U0010fffd"


def _bitmap(font: ImageFont.FreeTypeFont, text: str) -> Image.Image:
    image = Image.new("L", (120, 120), 0)
    ImageDraw.Draw(image).text((10, 10), text, fill=255, font=font)
    return image


def _drawn(font: ImageFont.FreeTypeFont, char: str) -> bool:
    """Whether the font has a real glyph for ``char``: something is drawn, and it is not the tofu box."""
    glyph = _bitmap(font, char)
    return (
        glyph.getbbox() is not None
        and ImageChops.difference(glyph, _bitmap(font, NO_GLYPH)).getbbox() is not None
    )


@pytest.fixture
def fresh_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """No configured font, no fontconfig, none of the usual system font files."""
    monkeypatch.setattr(get_settings(), "qr_sheet_font", None)
    monkeypatch.setattr(sheet, "_fontconfig_cjk", list)
    monkeypatch.setattr(sheet, "_KNOWN_CJK_FONTS", ())


@pytest.mark.usefixtures("fresh_machine")
def test_the_project_font_draws_every_character_of_a_sheet(session: Session) -> None:
    font_path = sheet.find_cjk_font()
    assert font_path is not None and font_path.is_file() and font_path.suffix == ".otf"
    staff = make_account(session, Role.staff, COUNTY_A)
    market = make_operator(session, staff, sector=Sector.market, name="西溪农贸市场")
    make_stall(session, market, number="A12", name="老张蔬菜・鲜肉", holder_name="欧阳娜娜")
    _market, [code] = sheet.market_codes(session, market.id or 0, cjk=True)
    assert (code.heading, code.number, code.name) == ("西溪农贸市场", "摊位 A12", "老张蔬菜・鲜肉")
    font = ImageFont.truetype(str(font_path), 40)
    footer = "扫码查询计量诚信信息投诉举报"
    missing = [
        ch
        for ch in code.heading + code.number + code.name + footer
        if not ch.isspace() and not _drawn(font, ch)
    ]
    assert missing == []
    rendered = sheet.render([code], sheet.SheetFormat.png, font_path=font_path)
    assert rendered.cjk_font == font_path and rendered.codes == 1


def test_a_missing_glyph_is_detected(tmp_path: Path) -> None:
    """The check above can fail: a Latin-only font has no glyph for a Chinese character."""
    latin = ImageFont.load_default(size=40)
    assert isinstance(latin, ImageFont.FreeTypeFont)
    assert _drawn(latin, "A") and not _drawn(latin, "市")


def test_holder_names_are_masked_on_the_printed_sticker(session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    market = make_operator(session, staff, sector=Sector.market, name="湖滨菜市场")
    make_stall(session, market, number="B1", name="王 小二水果", holder_name="王小二")
    _market, [code] = sheet.market_codes(session, market.id or 0, cjk=True)
    assert code.name == "王**水果"
