"""Unified Social Credit Code (统一社会信用代码) validation and generation per GB 32100-2015.

Layout of the 18 characters (all from the 31-character alphabet below, which never uses I, O, S, V, Z):

====== ========================================================================================
pos.   meaning
====== ========================================================================================
1      registration authority (登记管理部门代码), e.g. ``9`` 工商 (market regulation)
2      organisation type within that authority (机构类别代码), e.g. ``1`` 企业, ``2`` 个体工商户
3–8    GB/T 2260 division code of the registering authority (登记管理机关行政区划码)
9–17   subject identifier = GB 11714 organisation code: 8 body characters + its own check digit (pos. 17)
18     check character, ISO 7064 MOD 31-3 style with the weights 3**i mod 31 given in the standard
====== ========================================================================================

The division digits are checked for shape and a valid province prefix only, not against the current
division table: a code is issued for life, so an operator registered in a since-abolished county keeps a
code that names it.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

#: The code's alphabet, in value order (value = index): 0–9 then A–Y without I, O, S, V, Z.
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}

#: Weights of positions 1–17 for the 18th check character (GB 32100-2015, 4.3): 3**i mod 31.
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

#: Weights of the 8 organisation-code body characters for its check digit (GB 11714-1997).
ORG_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)

#: Registration authorities (pos. 1) with their organisation types (pos. 2): GB 32100-2015 Table 1/2
#: (1, 5, 9, Y) plus the authority codes assigned since under the standard's allocation rule
#: (2, 3, 4, 6, 7, 8, A, N), as published by the national USCC administration.
AUTHORITIES: dict[str, tuple[str, str, dict[str, tuple[str, str]]]] = {
    "1": (
        "机构编制",
        "institutional establishment",
        {
            "1": ("机关", "government organ"),
            "2": ("事业单位", "public institution"),
            "3": (
                "中央编办直接管理机构编制的群众团体",
                "mass organisation under the central establishment office",
            ),
            "9": ("其他", "other"),
        },
    ),
    "2": (
        "外交",
        "foreign affairs",
        {"1": ("外国常驻新闻机构", "resident foreign news agency"), "9": ("其他", "other")},
    ),
    "3": (
        "司法行政",
        "justice administration",
        {
            "1": ("律师执业机构", "law firm"),
            "2": ("公证处", "notary office"),
            "3": ("基层法律服务所", "grassroots legal service office"),
            "4": ("司法鉴定机构", "forensic appraisal institution"),
            "5": ("仲裁委员会", "arbitration commission"),
            "9": ("其他", "other"),
        },
    ),
    "4": (
        "文化",
        "culture",
        {"1": ("外国在华文化中心", "foreign cultural centre in China"), "9": ("其他", "other")},
    ),
    "5": (
        "民政",
        "civil affairs",
        {
            "1": ("社会团体", "social organisation"),
            "2": ("民办非企业单位", "private non-enterprise unit"),
            "3": ("基金会", "foundation"),
            "9": ("其他", "other"),
        },
    ),
    "6": (
        "旅游",
        "tourism",
        {
            "1": ("外国旅游部门常驻代表机构", "resident office of a foreign tourism authority"),
            "2": (
                "港澳台地区旅游部门常驻内地（大陆）代表机构",
                "resident office of a HK/Macau/Taiwan tourism authority",
            ),
            "9": ("其他", "other"),
        },
    ),
    "7": (
        "宗教",
        "religious affairs",
        {
            "1": ("宗教活动场所", "place of religious activity"),
            "2": ("宗教院校", "religious school"),
            "9": ("其他", "other"),
        },
    ),
    "8": ("工会", "trade unions", {"1": ("基层工会", "grassroots trade union"), "9": ("其他", "other")}),
    "9": (
        "工商",
        "industry and commerce (market regulation)",
        {
            "1": ("企业", "enterprise"),
            "2": ("个体工商户", "individual business"),
            "3": ("农民专业合作社", "farmers' specialised cooperative"),
        },
    ),
    "A": (
        "中央军委改革和编制办公室",
        "CMC reform and establishment office",
        {"1": ("军队事业单位", "military public institution"), "9": ("其他", "other")},
    ),
    "N": (
        "农业",
        "agriculture",
        {
            "1": ("组级集体经济组织", "group-level collective economic organisation"),
            "2": ("村级集体经济组织", "village-level collective economic organisation"),
            "3": ("乡镇级集体经济组织", "township-level collective economic organisation"),
            "9": ("其他", "other"),
        },
    ),
    "Y": ("其他", "other", {"1": ("其他", "other")}),
}

#: GB/T 2260 province-level prefixes of a registering authority; "100000" (national level) is also valid.
PROVINCE_PREFIXES = frozenset(
    {
        *("11", "12", "13", "14", "15"),
        *("21", "22", "23"),
        *("31", "32", "33", "34", "35", "36", "37"),
        *("41", "42", "43", "44", "45", "46"),
        *("50", "51", "52", "53", "54"),
        *("61", "62", "63", "64", "65"),
    }
)
NATIONAL_DIVISION = "100000"

_FORBIDDEN = frozenset("IOSVZ")


class USCCError(StrEnum):
    """Machine-readable reason a code was refused."""

    EMPTY = "empty"
    LENGTH = "length"
    FORBIDDEN_LETTER = "forbidden_letter"
    INVALID_CHARACTER = "invalid_character"
    AUTHORITY = "authority"
    ORGANISATION_TYPE = "organisation_type"
    DIVISION = "division"
    ORG_CODE_CHECK = "org_code_check"
    CHECK_CHARACTER = "check_character"


class InvalidUSCC(ValueError):
    """A refused code, with a stable reason and a precise message in Chinese and English."""

    def __init__(
        self, reason: USCCError, message_zh: str, message_en: str, position: int | None = None
    ) -> None:
        super().__init__(f"{message_en} / {message_zh}")
        self.reason = reason
        self.message_zh = message_zh
        self.message_en = message_en
        #: 1-based position of the offending character, when one character is to blame.
        self.position = position


@dataclass(frozen=True, slots=True)
class USCCParts:
    """A valid code split into its fields, with the authority and organisation type named."""

    code: str
    authority: str
    authority_zh: str
    authority_en: str
    organisation_type: str
    organisation_type_zh: str
    organisation_type_en: str
    division_code: str
    org_code: str
    check_character: str


def org_code_check_char(body: str) -> str:
    """The GB 11714 check digit ('0'–'9' or 'X') of an 8-character organisation-code body."""
    if len(body) != 8 or any(ch not in _VALUE for ch in body):
        raise ValueError(f"organisation-code body must be 8 characters of {ALPHABET!r}, got {body!r}")
    # GB 11714 values letters by their place in the full Latin alphabet (A=10 … Z=35), not by the USCC
    # alphabet's index; the two agree only on the digits.
    total = sum(
        (int(ch) if ch.isdigit() else ord(ch) - 55) * w for ch, w in zip(body, ORG_CODE_WEIGHTS, strict=True)
    )
    digit = 11 - total % 11
    return "X" if digit == 10 else "0" if digit == 11 else str(digit)


def uscc_check_char(prefix17: str) -> str:
    """The 18th check character for 17 alphabet characters (no structural checks)."""
    if len(prefix17) != 17 or any(ch not in _VALUE for ch in prefix17):
        raise ValueError(f"prefix must be 17 characters of {ALPHABET!r}, got {prefix17!r}")
    total = sum(_VALUE[ch] * w for ch, w in zip(prefix17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def _clean(raw: str) -> str:
    """Trim and upper-case; NFKC first so full-width input from a Chinese IME (９１４４…) is accepted."""
    return unicodedata.normalize("NFKC", raw).strip().upper()


def _check_characters(code: str) -> None:
    for pos, ch in enumerate(code, start=1):
        if ch in _VALUE:
            continue
        if ch in _FORBIDDEN:
            raise InvalidUSCC(
                USCCError.FORBIDDEN_LETTER,
                f"第{pos}位字符“{ch}”不允许出现（统一社会信用代码不使用 I、O、S、V、Z）",
                f"character {ch!r} at position {pos} is not allowed (the code never uses I, O, S, V or Z)",
                pos,
            )
        raise InvalidUSCC(
            USCCError.INVALID_CHARACTER,
            f"第{pos}位字符“{ch}”无效（只允许数字和大写字母）",
            f"character {ch!r} at position {pos} is invalid (only digits and capital letters are allowed)",
            pos,
        )


def _check_structure(prefix17: str) -> None:
    """Check positions 1–17: authority, organisation type, division digits and the organisation code."""
    authority = AUTHORITIES.get(prefix17[0])
    if authority is None:
        raise InvalidUSCC(
            USCCError.AUTHORITY,
            f"第1位登记管理部门代码“{prefix17[0]}”无效",
            f"registration authority code {prefix17[0]!r} at position 1 is not assigned",
            1,
        )
    authority_zh, authority_en, types = authority
    if prefix17[1] not in types:
        raise InvalidUSCC(
            USCCError.ORGANISATION_TYPE,
            f"第2位机构类别代码“{prefix17[1]}”不属于登记管理部门“{authority_zh}”（可用：{'、'.join(types)}）",
            f"organisation type {prefix17[1]!r} at position 2 does not exist for authority {authority_en!r}"
            f" (valid: {', '.join(types)})",
            2,
        )
    division = prefix17[2:8]
    if not division.isdigit() or (division[:2] not in PROVINCE_PREFIXES and division != NATIONAL_DIVISION):
        raise InvalidUSCC(
            USCCError.DIVISION,
            f"第3–8位登记管理机关行政区划码“{division}”无效（应为6位数字，前两位为省级代码）",
            f"division code {division!r} at positions 3–8 is invalid"
            " (6 digits starting with a province code)",
            3,
        )
    expected = org_code_check_char(prefix17[8:16])
    if prefix17[16] != expected:
        raise InvalidUSCC(
            USCCError.ORG_CODE_CHECK,
            f"第17位组织机构代码校验码应为“{expected}”，实际为“{prefix17[16]}”",
            f"organisation-code check digit at position 17 should be {expected!r}, not {prefix17[16]!r}",
            17,
        )


def normalise_uscc(raw: str) -> str:
    """Trim, upper-case and fully validate a code; returns it canonical or raises :class:`InvalidUSCC`."""
    code = _clean(raw) if isinstance(raw, str) else ""
    if not code:
        raise InvalidUSCC(USCCError.EMPTY, "统一社会信用代码为空", "the Unified Social Credit Code is empty")
    if len(code) != 18:
        raise InvalidUSCC(
            USCCError.LENGTH,
            f"统一社会信用代码应为18位，实际为{len(code)}位",
            f"a Unified Social Credit Code has 18 characters, got {len(code)}",
        )
    _check_characters(code)
    _check_structure(code[:17])
    expected = uscc_check_char(code[:17])
    if code[17] != expected:
        raise InvalidUSCC(
            USCCError.CHECK_CHARACTER,
            f"第18位校验码应为“{expected}”，实际为“{code[17]}”",
            f"check character at position 18 should be {expected!r}, not {code[17]!r}",
            18,
        )
    return code


def is_valid_uscc(raw: str) -> bool:
    """Whether ``raw`` (after trimming and upper-casing) is a valid code."""
    try:
        normalise_uscc(raw)
    except InvalidUSCC:
        return False
    return True


def parse_uscc(raw: str) -> USCCParts:
    """Validate a code and split it into named fields."""
    code = normalise_uscc(raw)
    authority_zh, authority_en, types = AUTHORITIES[code[0]]
    type_zh, type_en = types[code[1]]
    return USCCParts(
        code=code,
        authority=code[0],
        authority_zh=authority_zh,
        authority_en=authority_en,
        organisation_type=code[1],
        organisation_type_zh=type_zh,
        organisation_type_en=type_en,
        division_code=code[2:8],
        org_code=code[8:17],
        check_character=code[17],
    )


def make_uscc(prefix17: str) -> str:
    """Append the check character to a structurally valid 17-character prefix (for demo and test data)."""
    prefix = _clean(prefix17) if isinstance(prefix17, str) else ""
    if len(prefix) != 17:
        raise InvalidUSCC(
            USCCError.LENGTH,
            f"前缀应为17位，实际为{len(prefix)}位",
            f"the prefix must have 17 characters, got {len(prefix)}",
        )
    _check_characters(prefix)
    _check_structure(prefix)
    return prefix + uscc_check_char(prefix)


def random_usccs(
    division_code: str, count: int, *, seed: int, authority: str = "9", organisation_type: str = "1"
) -> list[str]:
    """``count`` distinct valid codes registered in ``division_code``, the same list for the same seed."""
    if count < 0:
        raise ValueError("count must not be negative")
    # Not a security use: seeded, reproducible demo data, so the stdlib PRNG is what we want.
    rng = random.Random(seed)
    codes: list[str] = []
    seen: set[str] = set()
    while len(codes) < count:
        body = "".join(rng.choice(ALPHABET) for _ in range(8))
        code = make_uscc(authority + organisation_type + division_code + body + org_code_check_char(body))
        if code not in seen:
            seen.add(code)
            codes.append(code)
    return codes
