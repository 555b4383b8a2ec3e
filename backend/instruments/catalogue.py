"""Instrument types as data: whether verification is mandatory, its period, and the regulation per row.

Periods follow the national verification regulations (JJG) and the 2020 catalogue of measuring instruments
under mandatory verification (市场监管总局公告2020年第42号《实施强制管理的计量器具目录》). A bureau updates
a row here (and re-runs ``gongping migrate``) when a regulation changes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InstrumentTypeSpec:
    """One row of the catalogue."""

    code: str
    name_zh: str
    name_en: str
    mandatory: bool
    period_months: int | None  # None: first verification only
    service_life_years: int | None  # for first-verification-only meters: replaced at the end of life
    regulation: str


CATALOGUE: tuple[InstrumentTypeSpec, ...] = (
    InstrumentTypeSpec(
        "price_scale",
        "电子计价秤",
        "electronic price-computing scale",
        True,
        12,
        None,
        "JJG 539-2016《数字指示秤》",
    ),
    InstrumentTypeSpec(
        "platform_scale",
        "电子台案秤",
        "electronic platform/counter scale",
        True,
        12,
        None,
        "JJG 539-2016《数字指示秤》",
    ),
    InstrumentTypeSpec(
        "mechanical_scale",
        "非自行指示秤（机械台案秤、杆秤）",
        "non-self-indicating scale",
        True,
        12,
        None,
        "JJG 14-2016《非自行指示秤》",
    ),
    InstrumentTypeSpec(
        "fuel_dispenser", "燃油加油机", "fuel dispenser", True, 6, None, "JJG 443-2023《燃油加油机》"
    ),
    InstrumentTypeSpec(
        "cng_dispenser",
        "压缩天然气加气机",
        "CNG dispenser",
        True,
        6,
        None,
        "JJG 996-2012《压缩天然气加气机》",
    ),
    InstrumentTypeSpec(
        "lpg_dispenser",
        "液化石油气加气机",
        "LPG dispenser",
        True,
        6,
        None,
        "JJG 997-2015《液化石油气加气机》",
    ),
    InstrumentTypeSpec(
        "taximeter", "出租汽车计价器", "taximeter", True, 12, None, "JJG 517-2016《出租汽车计价器》"
    ),
    InstrumentTypeSpec(
        "sphygmomanometer",
        "血压计（表）",
        "sphygmomanometer",
        True,
        12,
        None,
        "JJG 270-2008《血压计和血压表》",
    ),
    InstrumentTypeSpec(
        "clinical_thermometer",
        "玻璃体温计",
        "clinical glass thermometer",
        True,
        None,
        None,
        "JJG 111-2019《玻璃体温计》（首次强制检定）",
    ),
    InstrumentTypeSpec(
        "refractometer", "验光仪", "eye refractometer", True, 12, None, "JJG 892-2022《验光仪》"
    ),
    InstrumentTypeSpec(
        "focimeter", "焦度计", "focimeter (lensmeter)", True, 12, None, "JJG 580-2005《焦度计》"
    ),
    InstrumentTypeSpec(
        "trial_lens_set", "验光镜片箱", "trial lens set", True, 12, None, "JJG 579-2010《验光镜片箱》"
    ),
    InstrumentTypeSpec(
        "water_meter",
        "冷水水表",
        "cold water meter",
        True,
        None,
        6,
        "JJG 162-2019《饮用冷水水表》（首次强制检定，限期使用：口径≤25 mm 不超过 6 年）",
    ),
    InstrumentTypeSpec(
        "gas_meter",
        "膜式燃气表",
        "diaphragm gas meter",
        True,
        None,
        10,
        "JJG 577-2012《膜式燃气表》（首次强制检定，限期使用：天然气不超过 10 年）",
    ),
    InstrumentTypeSpec(
        "electricity_meter",
        "电能表",
        "electricity meter",
        True,
        None,
        8,
        "JJG 596-2012《电子式交流电能表》（首次强制检定，限期使用，到期轮换）",
    ),
    InstrumentTypeSpec("weights", "砝码", "weights", True, 12, None, "JJG 99-2022《砝码》"),
    InstrumentTypeSpec(
        "tape_measure",
        "钢卷尺",
        "steel tape measure",
        False,
        None,
        None,
        "JJG 4-2015《钢卷尺》（非强制检定）",
    ),
)

BY_CODE: dict[str, InstrumentTypeSpec] = {spec.code: spec for spec in CATALOGUE}
