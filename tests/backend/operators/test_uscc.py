"""Unified Social Credit Code validation per GB 32100-2015."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.operators.uscc import (
    ALPHABET,
    AUTHORITIES,
    WEIGHTS,
    InvalidUSCC,
    USCCError,
    is_valid_uscc,
    make_uscc,
    normalise_uscc,
    org_code_check_char,
    parse_uscc,
    random_usccs,
    uscc_check_char,
)

# Codes of large companies as published in their business licences and on their own web sites
# (national enterprise credit information publicity system, 国家企业信用信息公示系统).
REAL_CODES = {
    "914403001922038216": "华为技术有限公司",  # registered in 深圳 (440300)
    "9144030071526726XG": "腾讯科技（深圳）有限公司",  # ends in the org-code check 'X' and check char 'G'
    "91330100799655058B": "阿里巴巴（中国）有限公司",  # 杭州 (330100)
    "91110108558521630L": "小米通讯技术有限公司",  # 北京市海淀区 (110108), shown in the mi.com shop footer
}


@pytest.mark.parametrize("code", sorted(REAL_CODES))
def test_real_published_codes_validate(code: str) -> None:
    assert normalise_uscc(code) == code
    assert is_valid_uscc(code)


def test_parse_names_the_fields() -> None:
    parts = parse_uscc("914403001922038216")
    assert (parts.authority, parts.authority_zh) == ("9", "工商")
    assert (parts.organisation_type, parts.organisation_type_zh, parts.organisation_type_en) == (
        "1",
        "企业",
        "enterprise",
    )
    assert parts.division_code == "440300"
    assert parts.org_code == "192203821"
    assert parts.check_character == "6"


def test_weights_are_powers_of_three_mod_31() -> None:
    assert tuple(pow(3, i, 31) for i in range(17)) == WEIGHTS
    assert len(ALPHABET) == 31 and not set("IOSVZ") & set(ALPHABET)


def test_wrong_check_character_is_reported_precisely() -> None:
    with pytest.raises(InvalidUSCC) as info:
        normalise_uscc("914403001922038217")
    err = info.value
    assert err.reason is USCCError.CHECK_CHARACTER
    assert err.position == 18
    assert err.message_zh == "第18位校验码应为“6”，实际为“7”"
    assert err.message_en == "check character at position 18 should be '6', not '7'"
    assert isinstance(err, ValueError)


def test_wrong_org_code_check_digit_is_reported_before_the_check_character() -> None:
    # Same body, org-code check digit changed and the 18th character recomputed to match: only the
    # GB 11714 check at position 17 can catch this.
    prefix = "91440300192203822"
    code = prefix + uscc_check_char(prefix)
    with pytest.raises(InvalidUSCC) as info:
        normalise_uscc(code)
    assert info.value.reason is USCCError.ORG_CODE_CHECK
    assert info.value.position == 17
    assert "应为“1”" in info.value.message_zh


@pytest.mark.parametrize("letter", list("IOSVZ"))
def test_forbidden_letters(letter: str) -> None:
    code = "91440300" + letter + "92203821" + "6"
    with pytest.raises(InvalidUSCC) as info:
        normalise_uscc(code)
    assert info.value.reason is USCCError.FORBIDDEN_LETTER
    assert info.value.position == 9
    assert letter in info.value.message_en and "I、O、S、V、Z" in info.value.message_zh


@pytest.mark.parametrize(
    "bad", ["91440300-92203821X", "9144030019220382 6", "91440300中922038216", "9144030019220382_6"]
)
def test_other_invalid_characters(bad: str) -> None:
    with pytest.raises(InvalidUSCC) as info:
        normalise_uscc(bad)
    assert info.value.reason is USCCError.INVALID_CHARACTER


def test_lower_case_whitespace_and_full_width_are_normalised() -> None:
    assert normalise_uscc("  9144030071526726xg\n") == "9144030071526726XG"
    assert normalise_uscc("\t91330100799655058b ") == "91330100799655058B"
    assert normalise_uscc("９１４４０３００１９２２０３８２１６") == "914403001922038216"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", USCCError.EMPTY),
        ("   ", USCCError.EMPTY),
        ("91440300192203821", USCCError.LENGTH),
        ("9144030019220382166", USCCError.LENGTH),
    ],
)
def test_empty_and_length(raw: str, reason: USCCError) -> None:
    with pytest.raises(InvalidUSCC) as info:
        normalise_uscc(raw)
    assert info.value.reason is reason
    assert not is_valid_uscc(raw)


def test_length_message_gives_the_count() -> None:
    with pytest.raises(InvalidUSCC, match="got 17"):
        normalise_uscc("91440300192203821")


@pytest.mark.parametrize(
    ("prefix", "reason", "position"),
    [
        ("B1440300192203821", USCCError.AUTHORITY, 1),  # B is no registration authority
        ("0" + "1440300192203821", USCCError.AUTHORITY, 1),
        ("94440300192203821", USCCError.ORGANISATION_TYPE, 2),  # 工商 has only types 1, 2, 3
        ("Y2440300192203821", USCCError.ORGANISATION_TYPE, 2),  # 其他 has only type 1
        ("91990300192203821", USCCError.DIVISION, 3),  # no province 99
        ("9171000019220382" + "1", USCCError.DIVISION, 3),  # Taiwan: no mainland registering authority
        ("9144A300192203821", USCCError.DIVISION, 3),
    ],
)
def test_structure_errors(prefix: str, reason: USCCError, position: int) -> None:
    code = prefix + uscc_check_char(prefix)
    with pytest.raises(InvalidUSCC) as info:
        normalise_uscc(code)
    assert (info.value.reason, info.value.position) == (reason, position)
    with pytest.raises(InvalidUSCC) as info:
        make_uscc(prefix)
    assert info.value.reason is reason


def test_national_level_division_is_accepted() -> None:
    body = "50000000"
    assert is_valid_uscc(make_uscc("51100000" + body + org_code_check_char(body)))


def test_every_authority_and_type_in_the_table_is_accepted() -> None:
    body = "MA01ABCD"
    for authority, (_, _, types) in AUTHORITIES.items():
        for org_type in types:
            code = make_uscc(authority + org_type + "330106" + body + org_code_check_char(body))
            assert parse_uscc(code).authority == authority


def test_org_code_check_char_values_letters_by_latin_alphabet() -> None:
    # 腾讯: body 71526726 → 'X' (a remainder of 10), the case a naive digit-only check gets wrong.
    assert org_code_check_char("71526726") == "X"
    assert org_code_check_char("19220382") == "1"
    # Letter values A=10 … Y=34: changing one letter in the body changes the check digit.
    assert org_code_check_char("MA01ABCD") != org_code_check_char("MA01ABCE")
    with pytest.raises(ValueError):
        org_code_check_char("MA01ABC")
    with pytest.raises(ValueError):
        org_code_check_char("MA01ABCI")


def test_uscc_check_char_rejects_bad_prefix() -> None:
    with pytest.raises(ValueError):
        uscc_check_char("9144030019220382")
    with pytest.raises(ValueError):
        uscc_check_char("9144030019220382O")


def test_make_uscc_reproduces_real_codes() -> None:
    for code in REAL_CODES:
        assert make_uscc(code[:17].lower()) == code


def test_make_uscc_rejects_wrong_length() -> None:
    with pytest.raises(InvalidUSCC) as info:
        make_uscc("9144030019220382")
    assert info.value.reason is USCCError.LENGTH


def test_random_usccs_are_valid_distinct_deterministic_and_in_the_division() -> None:
    codes = random_usccs("420104", 50, seed=7)
    assert len(set(codes)) == 50
    assert all(is_valid_uscc(c) and c.startswith("91420104") for c in codes)
    assert random_usccs("420104", 50, seed=7) == codes
    assert random_usccs("420104", 50, seed=8) != codes
    assert random_usccs("420104", 3, seed=7) == codes[:3]
    individual = random_usccs("110105", 5, seed=1, authority="9", organisation_type="2")
    assert all(parse_uscc(c).organisation_type_zh == "个体工商户" for c in individual)
    assert random_usccs("110105", 0, seed=1) == []


def test_random_usccs_rejects_bad_arguments() -> None:
    with pytest.raises(InvalidUSCC):
        random_usccs("990000", 1, seed=1)
    with pytest.raises(InvalidUSCC):
        random_usccs("110105", 1, seed=1, authority="9", organisation_type="9")
    with pytest.raises(ValueError):
        random_usccs("110105", -1, seed=1)


# --- properties ---------------------------------------------------------------------------------------

_authority_and_type = st.sampled_from([a + t for a, (_, _, types) in AUTHORITIES.items() for t in types])
_division = st.tuples(
    st.sampled_from(["11", "31", "44", "50", "65"]), st.text(alphabet="0123456789", min_size=4, max_size=4)
).map("".join)
_body = st.text(alphabet=ALPHABET, min_size=8, max_size=8)


@st.composite
def valid_prefixes(draw: st.DrawFn) -> str:
    body = draw(_body)
    return draw(_authority_and_type) + draw(_division) + body + org_code_check_char(body)


@given(valid_prefixes())
def test_make_uscc_output_always_validates(prefix: str) -> None:
    code = make_uscc(prefix)
    assert normalise_uscc(code) == code
    assert normalise_uscc(code.lower()) == code


@given(valid_prefixes(), st.integers(min_value=0, max_value=17), st.sampled_from(ALPHABET))
def test_any_single_character_substitution_is_detected(prefix: str, index: int, replacement: str) -> None:
    code = make_uscc(prefix)
    if code[index] == replacement:
        replacement = ALPHABET[(ALPHABET.index(replacement) + 1) % len(ALPHABET)]
    altered = code[:index] + replacement + code[index + 1 :]
    assert not is_valid_uscc(altered)


@given(valid_prefixes(), st.integers(min_value=0, max_value=17), st.characters())
def test_any_single_character_change_to_anything_is_detected(
    prefix: str, index: int, replacement: str
) -> None:
    code = make_uscc(prefix)
    altered = code[:index] + replacement + code[index + 1 :]
    if normalise_uscc_or_none(altered) == code:
        return  # e.g. 'a' for 'A' or a full-width digit: the same code after normalisation
    assert not is_valid_uscc(altered)


def normalise_uscc_or_none(raw: str) -> str | None:
    try:
        return normalise_uscc(raw)
    except InvalidUSCC:
        return None


@given(st.text(max_size=40))
def test_arbitrary_text_never_raises_anything_but_invalid_uscc(raw: str) -> None:
    try:
        normalise_uscc(raw)
    except InvalidUSCC as err:
        assert err.message_zh and err.message_en
