"""How people's names appear in public (Art. 18): never in full.

An individual business (个体工商户, a code starting 92: registration authority 9, organisation type 2) is a
person trading under their own name; the holder's name inside its trade name is shown as 张**, as stall
holders are. ``backend.publication.listing`` computes the same in SQL so that the list's search matches it.
"""

from __future__ import annotations

from typing import Final

INDIVIDUAL_BUSINESS_PREFIX: Final = "92"


def mask_name(name: str) -> str:
    """A person's name as shown in public: the first character and two stars (张**), whatever its length."""
    name = name.strip()
    return f"{name[0]}**" if name else ""


def public_operator_name(name: str, uscc: str, legal_representative: str | None) -> str:
    """The operator's name as the public sees it: an individual business's holder name masked inside it."""
    holder = (legal_representative or "").strip()
    if not uscc.startswith(INDIVIDUAL_BUSINESS_PREFIX) or not holder:
        return name
    return name.replace(holder, mask_name(holder))
