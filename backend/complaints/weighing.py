"""The short-weight check for goods weighed at the point of sale (缺斤短两).

Source: 《零售商品称重计量监督管理办法》, 国家质量监督检验检疫总局、国家工商行政管理总局令第66号
(2004-08-10, in force 2004-12-01), amended by 国家市场监督管理总局令第31号 (2020-10-23). The 2020
amendment changed references and authority names only; the annex tables below are as issued in 2004.

* 第二条: the Order covers retail goods settled by weight: food (食品) and gold and silver jewellery
  (金银饰品). Other goods sold by weight are "另行规定" and have no permitted deviation here.
* 第五条: for each weighing within the ranges of 附表1/附表2, the re-weighed (核称) actual weight may fall
  short of the settled (结算) weight by at most the table's negative deviation. The row is chosen by the
  settled weight.
* 第六条: the re-weighing is done on the original instrument (checked with standard weights) or on an
  instrument whose maximum permissible error is at most a third of the deviation; ``measured_g`` is that
  value.

附表1 (food) has four classes by kind of food or, for food not named, by unit price; 附表2 has gold and silver
jewellery, per piece. Every deviation in the Order is an absolute mass in grams: none is a percentage.
The percentage in :class:`WeighingResult` is informative only.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from enum import StrEnum


class GoodsClass(StrEnum):
    """The classes of 附表1 (food) and 附表2 (jewellery) of Order No. 66."""

    #: 附表1 第一类: 粮食、蔬菜、水果或不高于6元/kg的食品.
    STAPLE_FOOD = "staple_food"
    #: 附表1 第二类: 肉、蛋、禽*、海（水）产品*、糕点、糖果、调味品或不高于30元/kg但高于6元/kg的食品
    #: (*the table's note leaves out 活禽、活鱼、水发物, which are weighed differently).
    MEAT_AND_PROCESSED = "meat_and_processed"
    #: 附表1 第三类: 干菜、山（海）珍品或高于30元/kg但不高于100元/kg的食品.
    DRIED_AND_DELICACY = "dried_and_delicacy"
    #: 附表1 第四类: 高于100元/kg的食品.
    PREMIUM_FOOD = "premium_food"
    #: 附表2: 金饰品, per piece.
    GOLD_JEWELLERY = "gold_jewellery"
    #: 附表2: 银饰品, per piece.
    SILVER_JEWELLERY = "silver_jewellery"


#: How each class is named to a person, in zh-CN and en.
GOODS_CLASS_LABELS: dict[GoodsClass, tuple[str, str]] = {
    GoodsClass.STAPLE_FOOD: (
        "粮食、蔬菜、水果或不高于6元/kg的食品",
        "grain, vegetables, fruit or food at ≤ 6 yuan/kg",
    ),
    GoodsClass.MEAT_AND_PROCESSED: (
        "肉、蛋、禽、海（水）产品、糕点、糖果、调味品或高于6元/kg且不高于30元/kg的食品",
        "meat, eggs, poultry, seafood, pastry, sweets, condiments or food at > 6 and ≤ 30 yuan/kg",
    ),
    GoodsClass.DRIED_AND_DELICACY: (
        "干菜、山（海）珍品或高于30元/kg且不高于100元/kg的食品",
        "dried vegetables, mountain and sea delicacies or food at > 30 and ≤ 100 yuan/kg",
    ),
    GoodsClass.PREMIUM_FOOD: ("高于100元/kg的食品", "food at > 100 yuan/kg"),
    GoodsClass.GOLD_JEWELLERY: ("金饰品（每件）", "gold jewellery (per piece)"),
    GoodsClass.SILVER_JEWELLERY: ("银饰品（每件）", "silver jewellery (per piece)"),
}


@dataclass(frozen=True, slots=True)
class ToleranceRow:
    """One row of an annex table: settled weights in (above_g, up_to_g] may be short by permitted_g."""

    goods_class: GoodsClass
    above_g: Decimal
    up_to_g: Decimal
    permitted_g: Decimal
    table_ref: str


def _row(
    goods_class: GoodsClass, above_g: str, up_to_g: str, permitted_g: str, table_ref: str
) -> ToleranceRow:
    return ToleranceRow(goods_class, Decimal(above_g), Decimal(up_to_g), Decimal(permitted_g), table_ref)


_ORDER = "《零售商品称重计量监督管理办法》（总局令第66号，2020年第31号令修订）第五条"

#: 附表1 and 附表2 of Order No. 66, row by row (grams; lower bound exclusive, upper bound inclusive).
TOLERANCE_TABLE: tuple[ToleranceRow, ...] = (
    # 附表1 第一类 粮食、蔬菜、水果或不高于6元/kg的食品
    _row(GoodsClass.STAPLE_FOOD, "0", "1000", "20", "附表1 第一类 m≤1kg"),
    _row(GoodsClass.STAPLE_FOOD, "1000", "2000", "40", "附表1 第一类 1kg<m≤2kg"),
    _row(GoodsClass.STAPLE_FOOD, "2000", "4000", "80", "附表1 第一类 2kg<m≤4kg"),
    _row(GoodsClass.STAPLE_FOOD, "4000", "25000", "100", "附表1 第一类 4kg<m≤25kg"),
    # 附表1 第二类 肉、蛋、禽、海（水）产品、糕点、糖果、调味品或高于6元/kg且不高于30元/kg的食品
    _row(GoodsClass.MEAT_AND_PROCESSED, "0", "2500", "5", "附表1 第二类 m≤2.5kg"),
    _row(GoodsClass.MEAT_AND_PROCESSED, "2500", "10000", "10", "附表1 第二类 2.5kg<m≤10kg"),
    _row(GoodsClass.MEAT_AND_PROCESSED, "10000", "15000", "15", "附表1 第二类 10kg<m≤15kg"),
    # 附表1 第三类 干菜、山（海）珍品或高于30元/kg且不高于100元/kg的食品
    _row(GoodsClass.DRIED_AND_DELICACY, "0", "1000", "2", "附表1 第三类 m≤1kg"),
    _row(GoodsClass.DRIED_AND_DELICACY, "1000", "4000", "4", "附表1 第三类 1kg<m≤4kg"),
    _row(GoodsClass.DRIED_AND_DELICACY, "4000", "6000", "6", "附表1 第三类 4kg<m≤6kg"),
    # 附表1 第四类 高于100元/kg的食品
    _row(GoodsClass.PREMIUM_FOOD, "0", "500", "1", "附表1 第四类 m≤500g"),
    _row(GoodsClass.PREMIUM_FOOD, "500", "2000", "2", "附表1 第四类 500g<m≤2kg"),
    _row(GoodsClass.PREMIUM_FOOD, "2000", "5000", "3", "附表1 第四类 2kg<m≤5kg"),
    # 附表2 金银饰品 (每件)
    _row(GoodsClass.GOLD_JEWELLERY, "0", "100", "0.01", "附表2 金饰品 每件 m≤100g"),
    _row(GoodsClass.SILVER_JEWELLERY, "0", "100", "0.1", "附表2 银饰品 每件 m≤100g"),
)

#: Smallest mass accepted (1 mg): below it no retail scale reads, and such input is a unit mistake.
MIN_MASS_G = Decimal("0.001")
#: Largest mass accepted (1 t): far above every table row, low enough to keep the arithmetic exact.
MAX_MASS_G = Decimal("1000000")
#: A re-weighed value more than this many times off the settled one is a g/kg mix-up, not a short weight.
MAX_RATIO = Decimal("10")


class WeightOutsideTable(ValueError):
    """The settled weight lies outside every row of the class's table, so the Order sets no tolerance."""


@dataclass(frozen=True, slots=True)
class WeighingResult:
    """The outcome of one check: the shortfall, what the Order permits, and a sentence for people."""

    goods_class: GoodsClass
    #: Settled minus re-weighed weight; negative when the buyer got more than was paid for.
    shortfall_g: Decimal
    #: The shortfall as a percentage of the settled weight, 2 decimals (informative; the Order uses grams).
    shortfall_pct: Decimal
    permitted_g: Decimal
    within_tolerance: bool
    table_ref: str
    explanation_zh: str
    explanation_en: str


def _as_decimal(name: str, value: object) -> Decimal:
    """Accept Decimal or int only: a float has already lost the exact figure read off the scale."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"{name} must be a Decimal (grams), got {type(value).__name__}")
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{name} must be a finite number of grams, got {number}")
    if number <= 0:
        raise ValueError(f"{name} must be positive, got {number} g")
    if not MIN_MASS_G <= number <= MAX_MASS_G:
        raise ValueError(f"{name} = {number} g is outside the plausible range {MIN_MASS_G}–{MAX_MASS_G} g")
    return number


def tolerance_row(declared_g: Decimal, goods_class: GoodsClass) -> ToleranceRow:
    """The annex row that applies to a settled weight; raises :class:`WeightOutsideTable` if none does."""
    goods_class = GoodsClass(goods_class)
    declared = _as_decimal("declared_g", declared_g)
    for row in TOLERANCE_TABLE:
        if row.goods_class is goods_class and row.above_g < declared <= row.up_to_g:
            return row
    top = max(r.up_to_g for r in TOLERANCE_TABLE if r.goods_class is goods_class)
    label_zh, label_en = GOODS_CLASS_LABELS[goods_class]
    raise WeightOutsideTable(
        f"结算重量 {declared} g 超出《零售商品称重计量监督管理办法》附表中“{label_zh}”的称重范围"
        f"（≤{top} g），"
        f"该办法未规定允许负偏差 / the settled weight {declared} g is beyond the Order's range for"
        f" {label_en} (≤ {top} g), where it sets no permitted deviation"
    )


def food_class_for_unit_price(yuan_per_kg: Decimal) -> GoodsClass:
    """The 附表1 class of a food not named in the table, from its unit price in yuan per kilogram."""
    if isinstance(yuan_per_kg, bool) or not isinstance(yuan_per_kg, Decimal | int):
        raise TypeError(f"unit price must be a Decimal (yuan/kg), got {type(yuan_per_kg).__name__}")
    price = Decimal(yuan_per_kg)
    if not price.is_finite() or price < 0:
        raise ValueError(f"unit price must be a non-negative number of yuan/kg, got {price}")
    # The bands read "不高于6元", "高于6元且不高于30元", "高于30元且不高于100元", "高于100元":
    # every upper bound is inclusive.
    if price <= 6:
        return GoodsClass.STAPLE_FOOD
    if price <= 30:
        return GoodsClass.MEAT_AND_PROCESSED
    if price <= 100:
        return GoodsClass.DRIED_AND_DELICACY
    return GoodsClass.PREMIUM_FOOD


def _fmt(value: Decimal) -> str:
    """A mass or percentage without exponent notation or trailing zeros (1E+3 → 1000, 5.00 → 5)."""
    with localcontext() as ctx:
        # normalize() rounds to the context precision; the caller's context must not shorten a mass.
        ctx.prec = 28
        text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def check_weighing(
    declared_g: Decimal, measured_g: Decimal, goods_class: GoodsClass = GoodsClass.STAPLE_FOOD
) -> WeighingResult:
    """Compare a re-weighed (核称) mass with the settled (结算) mass under Art. 5 and the annex tables."""
    declared = _as_decimal("declared_g", declared_g)
    measured = _as_decimal("measured_g", measured_g)
    with localcontext() as ctx:
        # Exact arithmetic whatever the caller's context: inputs are bounded, so 28 digits are plenty.
        ctx.prec = 28
        if measured > declared * MAX_RATIO or declared > measured * MAX_RATIO:
            raise ValueError(
                f"measured {measured} g and declared {declared} g differ more than {MAX_RATIO}-fold:"
                " check the units (g, not kg or 斤)"
            )
        row = tolerance_row(declared, goods_class)
        shortfall = declared - measured
        pct = (shortfall * 100 / declared).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    within = shortfall <= row.permitted_g
    label_zh, label_en = GOODS_CLASS_LABELS[row.goods_class]
    ref_zh = f"{_ORDER}、{row.table_ref}"
    head_zh = f"结算重量 {_fmt(declared)} g，核称重量 {_fmt(measured)} g"
    head_en = f"Settled {_fmt(declared)} g, re-weighed {_fmt(measured)} g"
    if shortfall == 0:
        body_zh, body_en = "，与结算重量一致", ": exactly as settled"
    elif shortfall < 0:
        body_zh = f"，无短缺（多给 {_fmt(-shortfall)} g）"
        body_en = f": no shortfall (over by {_fmt(-shortfall)} g)"
    else:
        body_zh = f"，短缺 {_fmt(shortfall)} g（{_fmt(pct)}%）"
        body_en = f": short by {_fmt(shortfall)} g ({_fmt(pct)}%)"
    verdict_zh = "未超出允许负偏差" if within else "超出允许负偏差，属短缺计量（缺斤短两）"
    verdict_en = (
        "within the permitted deviation" if within else "beyond the permitted deviation: short weight"
    )
    return WeighingResult(
        goods_class=row.goods_class,
        shortfall_g=shortfall,
        shortfall_pct=pct,
        permitted_g=row.permitted_g,
        within_tolerance=within,
        table_ref=ref_zh,
        explanation_zh=(
            f"{head_zh}{body_zh}；“{label_zh}”按{ref_zh}允许负偏差 {_fmt(row.permitted_g)} g，{verdict_zh}。"
        ),
        explanation_en=(
            f"{head_en}{body_en}; for {label_en} the Retail Goods Weighing Order (No. 66), Art. 5,"
            f" {row.table_ref}, permits {_fmt(row.permitted_g)} g: {verdict_en}."
        ),
    )
