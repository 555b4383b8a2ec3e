"""sniff() and validate(): format by magic bytes, size and pixel limits, decompression bombs, damage."""

from __future__ import annotations

import contextlib
import json
import time
import warnings

import pytest
from media_images import (
    HTML,
    PDF,
    SVG,
    encode,
    jpeg,
    jpeg_with_declared_size,
    png_bomb,
    zip_archive,
)
from PIL import Image, JpegImagePlugin

from backend.media import (
    DEFAULT_MAX_PIXELS,
    ImageFormat,
    MediaError,
    MediaRejected,
    MediaTooLarge,
    UnsupportedMedia,
    process,
    sniff,
    validate,
)


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00\x00\x00\x08free"


# ----- sniff ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "params", "expected"),
    [
        ("JPEG", {}, ImageFormat.JPEG),
        ("PNG", {}, ImageFormat.PNG),
        ("WEBP", {}, ImageFormat.WEBP),
        ("WEBP", {"lossless": True}, ImageFormat.WEBP),
        ("HEIF", {}, ImageFormat.HEIC),
    ],
)
def test_sniff_accepts_real_images(
    photo: Image.Image, fmt: str, params: dict[str, object], expected: ImageFormat
) -> None:
    assert sniff(encode(photo.resize((64, 48)), fmt, **params)) is expected


def test_sniff_webp_extended_header(photo: Image.Image) -> None:
    translucent = photo.resize((64, 48)).convert("RGBA")
    translucent.putalpha(128)
    data = encode(translucent, "WEBP")  # alpha -> VP8X chunk
    assert data[12:16] == b"VP8X"
    assert sniff(data) is ImageFormat.WEBP


@pytest.mark.parametrize(
    "ftyp",
    [
        _ftyp(b"heic", b"mif1", b"heic"),
        _ftyp(b"heix", b"mif1"),
        _ftyp(b"mif1", b"mif1", b"heic"),
        _ftyp(b"msf1", b"msf1", b"hevc"),
        _ftyp(b"hevc", b"msf1"),
        _ftyp(b"heim"),
        _ftyp(b"heis"),
        _ftyp(b"mif1", b"miaf"),
    ],
)
def test_sniff_heif_brands(ftyp: bytes) -> None:
    assert sniff(ftyp) is ImageFormat.HEIC


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(SVG, id="svg"),
        pytest.param(HTML, id="html"),
        pytest.param(b"\xef\xbb\xbf" + HTML, id="html-bom"),
        pytest.param(PDF, id="pdf"),
        pytest.param(b"GIF89a" + b"\x01\x00\x01\x00" + b"\x00" * 20, id="gif"),
        pytest.param(b"BM" + b"\x00" * 60, id="bmp"),
        pytest.param(b"II*\x00" + b"\x00" * 60, id="tiff"),
        pytest.param(zip_archive(), id="zip"),
        pytest.param(_ftyp(b"avif", b"mif1", b"miaf"), id="avif"),
        pytest.param(_ftyp(b"mif1", b"avif"), id="avif-compatible"),
        pytest.param(_ftyp(b"isom", b"mp41"), id="mp4"),
        pytest.param(b"\xff\xd8", id="jpeg-header-cut"),
        pytest.param(b"\xff\xd8\xff", id="jpeg-header-cut-3"),
        pytest.param(b"\x89PNG\r\n\x1a\n", id="png-signature-only"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHD", id="png-ihdr-cut"),
        pytest.param(b"RIFF\x00\x00\x00\x00WEBP", id="webp-cut"),
        pytest.param(b"RIFF\x24\x00\x00\x00WAVEfmt ", id="wav"),
        pytest.param(_ftyp(b"heic", b"mif1")[:14], id="ftyp-cut"),
        pytest.param(b"\x00\x00\x01\x00ftypheic" + b"\x00" * 8, id="ftyp-size-lies"),
        pytest.param(b"   \xff\xd8\xff\xe0", id="jpeg-not-at-start"),
    ],
)
def test_sniff_rejects_everything_else(data: bytes) -> None:
    with pytest.raises(UnsupportedMedia) as caught:
        sniff(data)
    assert caught.value.status == 415
    assert caught.value.reason == "unsupported_format"


def test_sniff_rejects_empty_with_its_own_reason() -> None:
    with pytest.raises(UnsupportedMedia) as caught:
        sniff(b"")
    assert caught.value.reason == "empty"


def test_svg_named_jpg_is_refused_by_content_alone() -> None:
    # There is no file-name or content-type parameter to trust: the bytes decide.
    for fn in (sniff, validate, process):
        with pytest.raises(UnsupportedMedia):
            fn(SVG)


# ----- errors -----------------------------------------------------------------------------------


def test_errors_carry_code_status_and_both_languages() -> None:
    with pytest.raises(MediaTooLarge) as caught:
        validate(b"\xff\xd8\xff\xe0" + b"\x00" * 2000, max_bytes=1000)
    error = caught.value
    assert isinstance(error, MediaError)
    assert (error.status, error.code, error.reason) == (413, "media_too_large", "too_many_bytes")
    assert any("\u4e00" <= ch <= "\u9fff" for ch in error.message_zh)
    assert error.message("en") == error.message_en and error.message("zh-CN") == error.message_zh
    body = error.to_dict()
    assert json.loads(json.dumps(body, ensure_ascii=False)) == body
    assert body["message"] == {"zh-CN": error.message_zh, "en": error.message_en}
    assert error.details == {"reason": "too_many_bytes"}


def test_size_limit_is_checked_before_format(photo: Image.Image) -> None:
    with pytest.raises(MediaTooLarge):
        validate(SVG * 100, max_bytes=1000)
    data = jpeg(photo)
    with pytest.raises(MediaTooLarge):
        process(data, max_bytes=len(data) - 1)
    assert validate(data, max_bytes=len(data)).byte_size == len(data)


# ----- validate: accepted -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("JPEG", ImageFormat.JPEG),
        ("PNG", ImageFormat.PNG),
        ("WEBP", ImageFormat.WEBP),
        ("HEIF", ImageFormat.HEIC),
    ],
)
def test_validate_reports_format_and_size(photo: Image.Image, fmt: str, expected: ImageFormat) -> None:
    data = encode(photo.resize((160, 120)), fmt)
    info = validate(data)
    assert (info.format, info.width, info.height, info.byte_size) == (expected, 160, 120, len(data))
    assert info.bytes_after_end == 0


def test_polyglot_with_appended_zip_is_accepted_and_counted(photo: Image.Image) -> None:
    archive = zip_archive()
    info = validate(jpeg(photo) + archive)
    assert info.bytes_after_end == len(archive)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "HEIF"])
def test_bytes_after_end_for_other_containers(photo: Image.Image, fmt: str) -> None:
    archive = zip_archive()
    assert validate(encode(photo.resize((64, 48)), fmt) + archive).bytes_after_end == len(archive)


# ----- validate: decompression bombs ------------------------------------------------------------


def _assert_bomb(data: bytes, **limits: int) -> MediaRejected:
    started = time.perf_counter()
    with pytest.raises(MediaRejected) as caught:
        validate(data, **limits)
    assert time.perf_counter() - started < 1.0, "must be refused from the header, without decoding"
    assert caught.value.reason == "decompression_bomb"
    assert caught.value.status == 422
    return caught.value


def test_png_bomb_beyond_pillow_hard_limit() -> None:
    data = png_bomb(100_000, 100_000)
    assert len(data) < 200
    _assert_bomb(data)
    with pytest.raises(MediaRejected):
        process(data)


def test_png_bomb_in_pillow_warning_band_is_rejected_not_warned() -> None:
    # 120 MP is between Pillow's MAX_IMAGE_PIXELS and twice that: Pillow only warns there.
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _assert_bomb(png_bomb(12_000, 10_000), max_pixels=10**9)
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]
    assert warnings.filters == before


def test_png_over_our_pixel_limit() -> None:
    error = _assert_bomb(png_bomb(9_000, 8_000))  # 72 MP > DEFAULT_MAX_PIXELS
    assert "9000×8000" in error.message_en and "9000×8000" in error.message_zh


def test_pixel_limit_is_configurable(photo: Image.Image) -> None:
    data = jpeg(photo)  # 640x480 = 307,200 px
    _assert_bomb(data, max_pixels=300_000)
    assert validate(data, max_pixels=640 * 480).width == 640
    assert DEFAULT_MAX_PIXELS >= 8160 * 6120  # a 50 MP phone photo passes by default


def test_jpeg_declaring_huge_dimensions(photo: Image.Image) -> None:
    _assert_bomb(jpeg_with_declared_size(jpeg(photo), 60_000, 60_000))


# ----- validate: damaged files and fake images --------------------------------------------------


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.9, 0.999])
def test_truncated_jpeg(photo: Image.Image, fraction: float) -> None:
    data = jpeg(photo)
    with pytest.raises(MediaRejected) as caught:
        validate(data[: int(len(data) * fraction)])
    assert caught.value.reason == "truncated"


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "HEIF"])
def test_truncated_other_formats(photo: Image.Image, fmt: str) -> None:
    data = encode(photo.resize((160, 120)), fmt)
    with pytest.raises(MediaRejected) as caught:
        validate(data[: len(data) // 2])
    assert caught.value.reason == "truncated"


def test_progressive_truncated_jpeg(photo: Image.Image) -> None:
    data = jpeg(photo, progressive=True)
    with pytest.raises(MediaRejected) as caught:
        process(data[: len(data) * 2 // 3])
    assert caught.value.reason == "truncated"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            b"\xff\xd8\xff\xfe\x00\x10<html>x</html>\x00" + HTML + b"\xff\xd9", id="jpeg-magic-html"
        ),
        pytest.param(
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" + b"\x00" * 17 + HTML, id="png-magic-zero-size"
        ),
        pytest.param(b"RIFF\x40\x00\x00\x00WEBPVP8 " + b"\x00" * 56, id="webp-magic-garbage"),
        pytest.param(_ftyp(b"heic", b"mif1") + b"\x00\x00\x00\x10mdat" + b"\x00" * 8, id="heic-no-meta"),
    ],
)
def test_fake_images_with_valid_magic_are_rejected(data: bytes) -> None:
    sniff(data)  # passes the magic-byte check ...
    with pytest.raises(MediaRejected) as caught:  # ... but is not an image
        validate(data)
    assert caught.value.reason in {"corrupt", "truncated"}
    with pytest.raises(MediaRejected):
        process(data)


def test_png_with_jpeg_inside_is_judged_as_png(photo: Image.Image) -> None:
    # Magic bytes pick the one decoder allowed to run; a JPEG body behind a PNG signature fails.
    data = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" + jpeg(photo)
    with pytest.raises(MediaRejected):
        validate(data)


def test_validate_decodes_jpeg_at_one_eighth_scale(
    photo: Image.Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[tuple[int, int]] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self: JpegImagePlugin.JpegImageFile, mode: str | None, size: tuple[int, int] | None) -> object:
        result = original(self, mode, size)
        sizes.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    assert validate(jpeg(photo)).width == 640  # reports the stored size ...
    assert sizes == [(80, 60)]  # ... after decoding every scan at 1/8 scale


def test_errors_are_media_errors_only(photo: Image.Image) -> None:
    data = bytearray(jpeg(photo))
    for offset in range(200, len(data), max(1, len(data) // 40)):  # flip bytes across the file
        broken = bytes(data[:offset]) + b"\xff\xff\x00\x13" + bytes(data[offset + 4 :])
        with contextlib.suppress(MediaError):  # accepted or refused, but never another exception
            validate(broken)
