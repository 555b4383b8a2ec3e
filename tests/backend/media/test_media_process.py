"""process(): orientation, EXIF evidence, metadata-free renditions, colour modes, perceptual hash."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from media_images import (
    SRGB_GREEN_D50,
    SRGB_RED_D50,
    encode,
    jpeg,
    jpeg_segments,
    make_exif,
    matrix_icc,
    photo_like,
    zip_archive,
)
from PIL import ExifTags, Image, ImageCms, JpegImagePlugin
from PIL.TiffImagePlugin import IFDRational

from backend.media import (
    DISPLAY_MAX_SIDE,
    SAME_PHOTO_MAX_DISTANCE,
    THUMBNAIL_MAX_SIDE,
    ImageFormat,
    ProcessedPhoto,
    hamming,
    is_metadata_free_jpeg,
    perceptual_hash,
    process,
)

BEIJING = (39.9073, 116.3916)
# Header segments a clean baseline/progressive JPEG may have: SOI, APP0 (JFIF), DQT, SOF0/SOF2, DHT, DRI, SOS.
ALLOWED_MARKERS = {0xD8, 0xE0, 0xDB, 0xC0, 0xC2, 0xC4, 0xDD, 0xDA}
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="39,54.438N"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


def _assert_stripped(data: bytes) -> None:
    """Parse a rendition's bytes and prove that no metadata and nothing after EOI is left."""
    markers = jpeg_segments(data)
    assert set(markers) <= ALLOWED_MARKERS, [hex(m) for m in markers]
    assert 0xE1 not in markers and 0xE2 not in markers and 0xED not in markers  # EXIF/XMP, ICC, IPTC
    assert data.endswith(b"\xff\xd9")
    assert data.count(b"\xff\xd9") == 1  # entropy-coded data never holds FFD9, so this EOI is the only end
    for needle in (b"Exif", b"http://ns.adobe.com", b"ICC_PROFILE", b"Photoshop", b"Xiaomi", b"PK\x03\x04"):
        assert needle not in data
    assert is_metadata_free_jpeg(data)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG" and im.mode == "RGB"
        assert not im.getexif() and "icc_profile" not in im.info and "xmp" not in im.info


def _pixel(data: bytes, xy: tuple[int, int]) -> tuple[int, ...]:
    with Image.open(io.BytesIO(data)) as im:
        value = im.convert("RGB").getpixel(xy)
    assert isinstance(value, tuple)
    return value


def _close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 24) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


# ----- orientation and evidence -----------------------------------------------------------------


def _marked_landscape() -> Image.Image:
    """A 400x300 image, grey, with a red block in the stored top-left corner."""
    im = Image.new("RGB", (400, 300), (128, 128, 128))
    im.paste((220, 20, 20), (0, 0, 60, 60))
    return im


@pytest.mark.parametrize(
    ("orientation", "size", "red_corner"),
    [
        (1, (400, 300), (5, 5)),
        (3, (400, 300), (394, 294)),
        (6, (300, 400), (294, 5)),  # rotate 90° clockwise to view: stored top-left -> top-right
        (8, (300, 400), (5, 394)),
        (2, (400, 300), (394, 5)),
        (5, (300, 400), (5, 5)),
    ],
)
def test_exif_orientation_is_applied(
    orientation: int, size: tuple[int, int], red_corner: tuple[int, int]
) -> None:
    photo = process(jpeg(_marked_landscape(), exif=make_exif(orientation=orientation), quality=95))
    assert (photo.display.width, photo.display.height) == size
    assert (photo.evidence.width, photo.evidence.height) == size
    assert photo.evidence.orientation == orientation
    assert _close(_pixel(photo.display.data, red_corner), (220, 20, 20))
    assert _close(_pixel(photo.display.data, (size[0] // 2, size[1] // 2)), (128, 128, 128))


def test_orientation_6_with_gps_evidence(photo: Image.Image) -> None:
    exif = make_exif(orientation=6, latitude=BEIJING[0], longitude=BEIJING[1], altitude=43.5)
    data = jpeg(photo, exif=exif)
    result = process(data)
    assert (result.display.width, result.display.height) == (480, 640)  # stored 640x480 -> portrait
    evidence = result.evidence
    assert evidence.gps is not None
    assert evidence.gps.latitude == pytest.approx(BEIJING[0], abs=1e-6)
    assert evidence.gps.longitude == pytest.approx(BEIJING[1], abs=1e-6)
    assert evidence.gps.altitude_m == pytest.approx(43.5)
    assert evidence.gps.timestamp_utc == "2024-05-01T02:20:30Z"
    assert evidence.gps.datum == "WGS-84"
    assert (evidence.make, evidence.model, evidence.software) == ("Xiaomi", "Redmi Note 12", "MIUI Camera")
    assert evidence.datetime_original == "2024-05-01T10:20:30+08:00"
    assert evidence.sha256 == result.sha256 == hashlib.sha256(data).hexdigest()
    assert (evidence.format, evidence.byte_size, evidence.bytes_after_end) == (ImageFormat.JPEG, len(data), 0)
    body = evidence.to_dict()
    assert json.loads(json.dumps(body)) == body
    assert body["gps"] == {
        "latitude": pytest.approx(BEIJING[0], abs=1e-6),
        "longitude": pytest.approx(BEIJING[1], abs=1e-6),
        "altitude_m": 43.5,
        "timestamp_utc": "2024-05-01T02:20:30Z",
        "datum": "WGS-84",
    }
    assert body["format"] == "jpeg" and body["mime_type"] == "image/jpeg"
    _assert_stripped(result.display.data)
    _assert_stripped(result.thumbnail.data)


def test_southern_and_western_hemispheres(photo: Image.Image) -> None:
    exif = make_exif(latitude=-33.8568, longitude=-70.6483, altitude=-12.0)
    gps = process(jpeg(photo, exif=exif)).evidence.gps
    assert gps is not None
    assert gps.latitude == pytest.approx(-33.8568, abs=1e-6)
    assert gps.longitude == pytest.approx(-70.6483, abs=1e-6)
    assert gps.altitude_m == pytest.approx(-12.0)


def test_missing_or_bogus_exif_gives_empty_evidence(photo: Image.Image) -> None:
    evidence = process(jpeg(photo)).evidence
    assert (evidence.gps, evidence.make, evidence.datetime_original, evidence.orientation) == (
        None,
        None,
        None,
        1,
    )

    exif = make_exif(latitude=0.0, longitude=0.0, taken="not a date", offset="+99:99")
    evidence = process(jpeg(photo, exif=exif)).evidence
    assert evidence.gps is None  # 0,0 is "no fix yet"
    assert evidence.datetime_original is None

    exif = make_exif(latitude=10.0, longitude=20.0, offset=None)
    gps_ifd = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps_ifd[ExifTags.GPS.GPSLatitude] = (IFDRational(1, 0), IFDRational(0, 1), IFDRational(0, 1))
    evidence = process(jpeg(photo, exif=exif)).evidence
    assert evidence.gps is None  # x/0 degrees
    assert evidence.datetime_original == "2024-05-01T10:20:30"  # no offset recorded

    exif = make_exif(orientation=9, make="Hua\x00wei\n", model=" " * 5)
    evidence = process(jpeg(photo, exif=exif)).evidence
    assert (evidence.orientation, evidence.make, evidence.model) == (1, "Huawei", None)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_garbage_exif_segment_does_not_block_processing(photo: Image.Image) -> None:
    data = jpeg(photo)
    garbage = b"Exif\x00\x00MM\x00\x2a\xff\xff\xff\xf0" + b"\x01" * 64
    segment = b"\xff\xe1" + (len(garbage) + 2).to_bytes(2, "big") + garbage
    result = process(data[:2] + segment + data[2:])
    assert result.evidence.gps is None
    _assert_stripped(result.display.data)


# ----- renditions -------------------------------------------------------------------------------


def test_all_metadata_is_stripped(photo: Image.Image) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = make_exif(orientation=1, latitude=BEIJING[0], longitude=BEIJING[1])
    data = jpeg(photo, exif=exif, icc_profile=icc, comment=b"Xiaomi secret comment", xmp=XMP)
    markers = jpeg_segments(data)
    assert {0xE1, 0xE2, 0xFE} <= set(markers)  # the input really carries EXIF/XMP, ICC and a comment
    result = process(data)
    assert result.evidence.color_profile is not None
    _assert_stripped(result.display.data)
    _assert_stripped(result.thumbnail.data)
    assert b"secret" not in result.display.data


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "HEIF"])
def test_metadata_from_other_formats_is_stripped_too(photo: Image.Image, fmt: str) -> None:
    exif = make_exif(latitude=BEIJING[0], longitude=BEIJING[1])
    result = process(encode(photo.resize((160, 120)), fmt, exif=exif.tobytes()))  # small: x265 is slow
    assert result.evidence.gps is not None
    assert result.evidence.gps.latitude == pytest.approx(BEIJING[0], abs=1e-6)
    _assert_stripped(result.display.data)
    _assert_stripped(result.thumbnail.data)


def test_polyglot_jpeg_zip_accepted_but_nothing_appended_survives(photo: Image.Image) -> None:
    archive = zip_archive()
    data = jpeg(photo) + archive
    result = process(data)
    assert result.evidence.bytes_after_end == len(archive)
    assert result.sha256 == hashlib.sha256(data).hexdigest()  # the evidence hash covers the appended bytes
    for rendition in (result.display, result.thumbnail):
        _assert_stripped(rendition.data)
        assert b"evil.html" not in rendition.data


def test_mpo_multi_picture_jpeg_is_accepted(photo: Image.Image) -> None:
    data = encode(photo, "MPO", save_all=True, append_images=[photo.resize((320, 240))])
    result = process(data)
    assert result.format is ImageFormat.JPEG
    assert (result.display.width, result.display.height) == (640, 480)
    assert result.evidence.bytes_after_end > 0  # the second picture follows the first EOI
    _assert_stripped(result.display.data)


def _cheap(width: int, height: int) -> Image.Image:
    """A large but quick-to-code picture: a gradient with a frame."""
    im = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    im.paste((200, 30, 30), (0, 0, width, 8))
    return im


def test_sizes_fit_the_boxes_and_never_upscale() -> None:
    big = process(jpeg(_cheap(2560, 1440)))
    assert (big.display.width, big.display.height) == (DISPLAY_MAX_SIDE, 1152)
    assert (big.thumbnail.width, big.thumbnail.height) == (THUMBNAIL_MAX_SIDE, 288)
    small = process(jpeg(photo_like(300, 200, seed=3)))
    assert (small.display.width, small.display.height) == (300, 200)
    assert (small.thumbnail.width, small.thumbnail.height) == (300, 200)
    for result in (big, small):
        for rendition in (result.display, result.thumbnail):
            with Image.open(io.BytesIO(rendition.data)) as im:
                assert im.size == (rendition.width, rendition.height)
            assert rendition.content_type == "image/jpeg"


def test_large_jpeg_is_decoded_at_reduced_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str | None, tuple[int, int] | None, object]] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self: JpegImagePlugin.JpegImageFile, mode: str | None, size: tuple[int, int] | None) -> object:
        result = original(self, mode, size)
        calls.append((mode, size, self.size))
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    result = process(jpeg(_cheap(4400, 1100), quality=80))
    assert calls == [("RGB", (2048, 512), (2200, 550))]  # libjpeg scaled by 1/2, still >= the target
    assert (result.display.width, result.display.height) == (2048, 512)


# ----- colour modes -----------------------------------------------------------------------------


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (200, 100), (255, 0, 0, 0))  # pure cyan ink
    cmyk.paste((0, 0, 0, 255), (100, 0, 200, 100))  # black ink
    data = jpeg(cmyk, quality=95)
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode == "CMYK"
    result = process(data)
    _assert_stripped(result.display.data)
    assert _close(_pixel(result.display.data, (50, 50)), (0, 255, 255))
    assert _close(_pixel(result.display.data, (150, 50)), (0, 0, 0))


def test_rgba_png_is_flattened_on_white() -> None:
    im = Image.new("RGBA", (120, 80), (0, 0, 0, 0))
    im.paste((200, 0, 0, 255), (0, 0, 60, 80))
    result = process(encode(im, "PNG"))
    _assert_stripped(result.display.data)
    assert _close(_pixel(result.display.data, (30, 40)), (200, 0, 0))
    assert _close(_pixel(result.display.data, (90, 40)), (255, 255, 255))


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        pytest.param(Image.new("LA", (64, 64), (50, 0)), (255, 255, 255), id="LA-transparent"),
        pytest.param(Image.new("LA", (64, 64), (50, 255)), (50, 50, 50), id="LA-opaque"),
        pytest.param(Image.new("L", (64, 64), 90), (90, 90, 90), id="L"),
        pytest.param(Image.new("1", (64, 64), 1), (255, 255, 255), id="1-bit"),
        pytest.param(Image.new("I;16", (64, 64), 0x8000), (128, 128, 128), id="16-bit-grey"),
        pytest.param(Image.new("RGB", (64, 64), (10, 200, 30)).quantize(8), (10, 200, 30), id="P"),
    ],
)
def test_png_modes_become_rgb(image: Image.Image, expected: tuple[int, int, int]) -> None:
    result = process(encode(image, "PNG"))
    _assert_stripped(result.display.data)
    assert _close(_pixel(result.display.data, (32, 32)), expected, tolerance=6)


def test_palette_png_with_transparency() -> None:
    im = Image.new("P", (64, 64), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.paste(1, (32, 0, 64, 64))
    result = process(encode(im, "PNG", transparency=0))
    assert _close(_pixel(result.display.data, (10, 32)), (255, 255, 255))
    assert _close(_pixel(result.display.data, (50, 32)), (0, 0, 255))


def test_webp_with_alpha_and_heic(photo: Image.Image) -> None:
    translucent = photo.convert("RGBA")
    translucent.putalpha(200)
    webp = process(encode(translucent, "WEBP"))
    assert webp.format is ImageFormat.WEBP
    _assert_stripped(webp.display.data)

    heic = process(encode(photo.resize((160, 120)), "HEIF", exif=make_exif(orientation=6).tobytes()))
    assert heic.format is ImageFormat.HEIC
    # pillow_heif applies the rotation while decoding and resets the tag: rotated once, not twice.
    assert (heic.display.width, heic.display.height) == (120, 160)
    _assert_stripped(heic.display.data)


def test_pixels_in_another_colour_space_are_converted_to_srgb() -> None:
    # A profile whose "red" channel has sRGB's green primary (and vice versa), like a wide-gamut
    # Display P3 photo but unmistakable: the converted, profile-less output must show green.
    swapped = matrix_icc("Swapped RG test", SRGB_GREEN_D50, SRGB_RED_D50)
    result = process(jpeg(Image.new("RGB", (64, 64), (200, 0, 0)), icc_profile=swapped, quality=95))
    assert result.evidence.color_profile == "Swapped RG test"
    _assert_stripped(result.display.data)
    assert _close(_pixel(result.display.data, (32, 32)), (0, 200, 0), tolerance=8)

    same = matrix_icc("Display test", SRGB_RED_D50, SRGB_GREEN_D50)
    result = process(jpeg(Image.new("RGB", (64, 64), (200, 0, 0)), icc_profile=same, quality=95))
    assert _close(_pixel(result.display.data, (32, 32)), (200, 0, 0), tolerance=8)


def test_bogus_icc_profile_is_ignored(photo: Image.Image) -> None:
    result = process(jpeg(photo, icc_profile=b"not really a colour profile" * 4))
    assert result.evidence.color_profile is None
    _assert_stripped(result.display.data)


# ----- perceptual hash --------------------------------------------------------------------------


def _reencoded_copy(photo: Image.Image) -> bytes:
    smaller = photo.resize((photo.width // 2, photo.height // 2), Image.Resampling.BILINEAR)
    return jpeg(smaller, quality=55)


def test_phash_survives_reencoding_resizing_and_format_change(photo: Image.Image) -> None:
    reference = process(jpeg(photo, quality=92))
    for copy in (
        _reencoded_copy(photo),
        encode(photo, "PNG"),
        encode(photo.resize((960, 720), Image.Resampling.BICUBIC), "WEBP", quality=60),
        jpeg(photo.transpose(Image.Transpose.ROTATE_90), exif=make_exif(orientation=6)),  # same view
    ):
        assert hamming(reference.phash, process(copy).phash) <= 4


def test_phash_separates_different_photos(photo: Image.Image, other_photo: Image.Image) -> None:
    a, b = process(jpeg(photo)), process(jpeg(other_photo))
    assert hamming(a.phash, b.phash) > SAME_PHOTO_MAX_DISTANCE * 2
    third = process(jpeg(photo_like(640, 480, seed=2024)))
    assert hamming(a.phash, third.phash) > SAME_PHOTO_MAX_DISTANCE
    assert hamming(b.phash, third.phash) > SAME_PHOTO_MAX_DISTANCE


def test_phash_is_64_bits_and_hamming_takes_hex(photo: Image.Image) -> None:
    result: ProcessedPhoto = process(jpeg(photo))
    assert 0 <= result.phash < 2**64
    assert len(result.phash_hex) == 16 and int(result.phash_hex, 16) == result.phash
    assert hamming(result.phash_hex, result.phash) == 0
    assert hamming(0, 2**64 - 1) == 64
    assert hamming("00000000000000ff", "0000000000000000") == 8
    assert perceptual_hash(photo) == perceptual_hash(photo.copy())
