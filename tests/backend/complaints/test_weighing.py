"""The Art. 5 short-weight check against the annex tables of Order No. 66."""

from __future__ import annotations

from decimal import Decimal, localcontext
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.complaints.weighing import (
    GOODS_CLASS_LABELS,
    TOLERANCE_TABLE,
    GoodsClass,
    WeightOutsideTable,
    check_weighing,
    food_class_for_unit_price,
    tolerance_row,
)

D = Decimal

# (class, settled weight at or just past a row edge, permitted negative deviation in g, row reference)
EDGES = [
    (GoodsClass.STAPLE_FOOD, "0.001", "20", "m≤1kg"),
    (GoodsClass.STAPLE_FOOD, "1000", "20", "m≤1kg"),
    (GoodsClass.STAPLE_FOOD, "1000.001", "40", "1kg<m≤2kg"),
    (GoodsClass.STAPLE_FOOD, "2000", "40", "1kg<m≤2kg"),
    (GoodsClass.STAPLE_FOOD, "2000.1", "80", "2kg<m≤4kg"),
    (GoodsClass.STAPLE_FOOD, "4000", "80", "2kg<m≤4kg"),
    (GoodsClass.STAPLE_FOOD, "4001", "100", "4kg<m≤25kg"),
    (GoodsClass.STAPLE_FOOD, "25000", "100", "4kg<m≤25kg"),
    (GoodsClass.MEAT_AND_PROCESSED, "500", "5", "m≤2.5kg"),
    (GoodsClass.MEAT_AND_PROCESSED, "2500", "5", "m≤2.5kg"),
    (GoodsClass.MEAT_AND_PROCESSED, "2500.5", "10", "2.5kg<m≤10kg"),
    (GoodsClass.MEAT_AND_PROCESSED, "10000", "10", "2.5kg<m≤10kg"),
    (GoodsClass.MEAT_AND_PROCESSED, "10000.01", "15", "10kg<m≤15kg"),
    (GoodsClass.MEAT_AND_PROCESSED, "15000", "15", "10kg<m≤15kg"),
    (GoodsClass.DRIED_AND_DELICACY, "1000", "2", "m≤1kg"),
    (GoodsClass.DRIED_AND_DELICACY, "1000.01", "4", "1kg<m≤4kg"),
    (GoodsClass.DRIED_AND_DELICACY, "4000", "4", "1kg<m≤4kg"),
    (GoodsClass.DRIED_AND_DELICACY, "4000.01", "6", "4kg<m≤6kg"),
    (GoodsClass.DRIED_AND_DELICACY, "6000", "6", "4kg<m≤6kg"),
    (GoodsClass.PREMIUM_FOOD, "500", "1", "m≤500g"),
    (GoodsClass.PREMIUM_FOOD, "500.01", "2", "500g<m≤2kg"),
    (GoodsClass.PREMIUM_FOOD, "2000", "2", "500g<m≤2kg"),
    (GoodsClass.PREMIUM_FOOD, "2000.01", "3", "2kg<m≤5kg"),
    (GoodsClass.PREMIUM_FOOD, "5000", "3", "2kg<m≤5kg"),
    (GoodsClass.GOLD_JEWELLERY, "100", "0.01", "金饰品 每件 m≤100g"),
    (GoodsClass.SILVER_JEWELLERY, "100", "0.1", "银饰品 每件 m≤100g"),
]


@pytest.mark.parametrize(("goods_class", "declared", "permitted", "ref"), EDGES)
def test_row_edges_select_the_right_row(
    goods_class: GoodsClass, declared: str, permitted: str, ref: str
) -> None:
    row = tolerance_row(D(declared), goods_class)
    assert row.permitted_g == D(permitted)
    assert row.table_ref.endswith(ref)


# The 1 mg row edge cannot lose a 20 g deviation; every other edge can.
EDGES_WITH_ROOM = [edge for edge in EDGES if D(edge[1]) > D(edge[2]) * 2]


@pytest.mark.parametrize(("goods_class", "declared", "permitted", "ref"), EDGES_WITH_ROOM)
def test_shortfall_equal_to_the_deviation_passes_and_one_step_more_fails(
    goods_class: GoodsClass, declared: str, permitted: str, ref: str
) -> None:
    settled, allowed = D(declared), D(permitted)
    at_limit = check_weighing(settled, settled - allowed, goods_class)
    assert at_limit.within_tolerance
    assert at_limit.shortfall_g == allowed
    assert at_limit.permitted_g == allowed
    assert ref in at_limit.table_ref
    beyond = check_weighing(settled, settled - allowed - D("0.001"), goods_class)
    assert not beyond.within_tolerance
    assert beyond.shortfall_g == allowed + D("0.001")


@pytest.mark.parametrize(
    ("goods_class", "declared"),
    [
        (GoodsClass.STAPLE_FOOD, "25000.001"),
        (GoodsClass.MEAT_AND_PROCESSED, "15000.5"),
        (GoodsClass.DRIED_AND_DELICACY, "6001"),
        (GoodsClass.PREMIUM_FOOD, "5000.01"),
        (GoodsClass.GOLD_JEWELLERY, "100.01"),
        (GoodsClass.SILVER_JEWELLERY, "150"),
    ],
)
def test_beyond_the_last_row_the_order_sets_no_tolerance(goods_class: GoodsClass, declared: str) -> None:
    with pytest.raises(WeightOutsideTable) as info:
        check_weighing(D(declared), D(declared), goods_class)
    assert "未规定允许负偏差" in str(info.value) and "sets no permitted deviation" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_typical_short_weight_at_a_market_stall() -> None:
    # 2 jin (1000 g) of pork, the stall's scale settled 1000 g, the fair scale (公平秤) shows 960 g.
    result = check_weighing(D("1000"), D("960"), GoodsClass.MEAT_AND_PROCESSED)
    assert result.shortfall_g == D("40")
    assert result.shortfall_pct == D("4.00")
    assert result.permitted_g == D("5")
    assert not result.within_tolerance
    assert (
        result.table_ref
        == "《零售商品称重计量监督管理办法》（总局令第66号，2020年第31号令修订）第五条、附表1 第二类 m≤2.5kg"
    )
    assert result.explanation_zh == (
        "结算重量 1000 g，核称重量 960 g，短缺 40 g（4%）；“肉、蛋、禽、海（水）产品、糕点、糖果、调味品或"
        "高于6元/kg且不高于30元/kg的食品”按《零售商品称重计量监督管理办法》（总局令第66号，2020年第31号令修订）"
        "第五条、附表1 第二类 m≤2.5kg允许负偏差 5 g，超出允许负偏差，属短缺计量（缺斤短两）。"
    )
    assert result.explanation_en.startswith("Settled 1000 g, re-weighed 960 g: short by 40 g (4%);")
    assert result.explanation_en.endswith("permits 5 g: beyond the permitted deviation: short weight.")


def test_overweight_and_exact_are_within_tolerance() -> None:
    over = check_weighing(D("1500"), D("1512.5"))
    assert over.goods_class is GoodsClass.STAPLE_FOOD
    assert over.shortfall_g == D("-12.5")
    assert over.shortfall_pct == D("-0.83")
    assert over.within_tolerance
    assert "多给 12.5 g" in over.explanation_zh and "over by 12.5 g" in over.explanation_en
    exact = check_weighing(D("500"), D("500.0"), GoodsClass.PREMIUM_FOOD)
    assert exact.shortfall_g == 0 and exact.within_tolerance
    assert "与结算重量一致" in exact.explanation_zh and "exactly as settled" in exact.explanation_en


def test_gold_is_checked_to_the_hundredth_of_a_gram() -> None:
    assert check_weighing(D("12.35"), D("12.34"), GoodsClass.GOLD_JEWELLERY).within_tolerance
    result = check_weighing(D("12.35"), D("12.33"), GoodsClass.GOLD_JEWELLERY)
    assert not result.within_tolerance
    assert "附表2 金饰品" in result.table_ref


def test_integers_are_accepted_as_grams() -> None:
    assert check_weighing(1000, 985).within_tolerance  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("declared", "measured"),
    [
        (D("0"), D("1")),
        (D("-5"), D("1")),
        (D("1000"), D("0")),
        (D("1000"), D("-1")),
        (D("NaN"), D("1")),
        (D("1000"), D("sNaN")),
        (D("Infinity"), D("1000")),
        (D("1000"), D("-Infinity")),
        (D("0.0001"), D("0.0001")),  # below 1 mg
        (D("2000000"), D("2000000")),  # 2 t at a retail stall
        (D("1E+999999"), D("1")),
        (D("1000"), D("1")),  # 1000-fold: the measurement was typed in kg
        (D("1"), D("1000")),
    ],
)
def test_absurd_values_are_rejected_with_value_error(declared: Decimal, measured: Decimal) -> None:
    with pytest.raises(ValueError):
        check_weighing(declared, measured)


@pytest.mark.parametrize("bad", [1000.0, "1000", None, True])
def test_non_decimal_types_are_refused(bad: object) -> None:
    with pytest.raises(TypeError):
        check_weighing(bad, D("1000"))  # type: ignore[arg-type]


def test_unknown_goods_class_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        check_weighing(D("1000"), D("990"), "caviar")  # type: ignore[arg-type]


def test_goods_class_may_be_given_by_value() -> None:
    assert check_weighing(D("1000"), D("990"), "premium_food").goods_class is GoodsClass.PREMIUM_FOOD  # type: ignore[arg-type]


def test_result_does_not_depend_on_the_callers_decimal_context() -> None:
    expected = check_weighing(D("1234.567"), D("1229.001"), GoodsClass.DRIED_AND_DELICACY)
    with localcontext() as ctx:
        ctx.prec = 3
        assert check_weighing(D("1234.567"), D("1229.001"), GoodsClass.DRIED_AND_DELICACY) == expected
    assert expected.shortfall_g == D("5.566")


@pytest.mark.parametrize(
    ("price", "goods_class"),
    [
        ("0", GoodsClass.STAPLE_FOOD),
        ("6", GoodsClass.STAPLE_FOOD),
        ("6.01", GoodsClass.MEAT_AND_PROCESSED),
        ("30", GoodsClass.MEAT_AND_PROCESSED),
        ("30.01", GoodsClass.DRIED_AND_DELICACY),
        ("100", GoodsClass.DRIED_AND_DELICACY),
        ("100.01", GoodsClass.PREMIUM_FOOD),
    ],
)
def test_food_class_for_unit_price_bands(price: str, goods_class: GoodsClass) -> None:
    assert food_class_for_unit_price(D(price)) is goods_class


@pytest.mark.parametrize("price", ["-1", "NaN", "sNaN", "Infinity"])
def test_food_class_for_unit_price_rejects_nonsense(price: str) -> None:
    with pytest.raises(ValueError):
        food_class_for_unit_price(D(price))


@pytest.mark.parametrize("price", [12.5, "12.5", None])
def test_food_class_for_unit_price_wants_a_decimal(price: object) -> None:
    with pytest.raises(TypeError):
        food_class_for_unit_price(price)  # type: ignore[arg-type]
    assert food_class_for_unit_price(12) is GoodsClass.MEAT_AND_PROCESSED  # type: ignore[arg-type]


def test_table_shape() -> None:
    assert set(GOODS_CLASS_LABELS) == set(GoodsClass)
    for goods_class in GoodsClass:
        rows = [r for r in TOLERANCE_TABLE if r.goods_class is goods_class]
        assert rows and rows[0].above_g == 0
        # Rows of a class are contiguous and the permitted deviation never shrinks as the mass grows.
        for before, after in pairwise(rows):
            assert before.up_to_g == after.above_g
            assert before.permitted_g < after.permitted_g


@given(
    st.sampled_from(list(GoodsClass)),
    st.decimals(min_value=D("0.01"), max_value=D("100"), places=2),
    st.decimals(min_value=D("0.5"), max_value=D("1.5"), places=3),
)
def test_verdict_is_shortfall_at_most_permitted(
    goods_class: GoodsClass, declared: Decimal, factor: Decimal
) -> None:
    measured = (declared * factor).quantize(D("0.001"))
    if measured <= 0:
        return
    result = check_weighing(declared, measured, goods_class)
    assert result.shortfall_g == declared - measured
    assert result.within_tolerance == (declared - measured <= result.permitted_g)
