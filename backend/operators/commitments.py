"""Versions of the integrity self-commitment text operators sign (自我承诺; notice §2, Art. 8 good records)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CommitmentText:
    """One published version of the commitment text."""

    version: str
    text_zh: str
    text_en: str
    basis: str


COMMITMENT_TEXTS: dict[str, CommitmentText] = {
    "2017-1": CommitmentText(
        version="2017-1",
        text_zh=(
            "本经营者自愿作出诚信计量承诺：遵守计量法律法规，使用经检定合格且在有效期内的计量器具，"
            "不使用国家明令淘汰的计量器具，不破坏计量器具准确度，商品量足斤足两、不缺斤短两，"
            "定量包装商品净含量符合要求，明示计量器具检定信息，接受市场监管部门和社会监督。"
        ),
        text_en=(
            "We voluntarily commit to honest measurement: to obey metrology laws, to use only instruments that "
            "have passed verification and are within their validity, never to tamper with an instrument's "
            "accuracy, to give full weight and measure, to keep prepackaged net contents compliant, to display "
            "verification information, and to accept supervision by the bureau and the public."
        ),
        basis="《商业服务业诚信计量行为规范》; 质检总局国质检量函〔2017〕566号 第二项",
    ),
}
