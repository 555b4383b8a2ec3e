"""How people's names appear in public (Art. 18): never in full.

Natural persons' names are masked wherever the public reads them: an operator's legal representative (the
holder of an individual business, code 92…, or of a sole proprietorship, code 91…, trades under a name that
often is or contains their own) and a stall holder, whatever the code. The name is found in the text however
it is spaced ("王 小二", "王　小二", "阿依古丽 · 买买提" for "阿依古丽·买买提") and shown as its first character
and two stars (王**). ``backend.publication.listing`` searches the same masked form in SQL (``search_form``) so
that a search by a person's name reveals nothing a list does not show.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

#: Characters that may stand between the parts of a name as written by different people: spaces (ASCII,
#: no-break, ideographic) and the middle dots of transcribed minority and foreign names.
NAME_SEPARATORS: Final[tuple[str, ...]] = (
    " ",
    "\t",
    "\n",
    "\r",
    "\u00a0",
    "\u3000",
    "·",
    "•",
    "・",
    "‧",
    "･",
    "．",
)
#: A name needs this many characters (separators aside) to be looked for inside other text: one character
#: alone (a surname) would mask unrelated words.
MIN_NAME_CHARS: Final = 2

_SEPARATOR_CLASS: Final = "[" + re.escape("".join(NAME_SEPARATORS)) + "]*"


def name_chars(name: str) -> str:
    """A name without spaces or middle dots: the characters that identify the person."""
    return "".join(ch for ch in name if ch not in NAME_SEPARATORS)


def mask_name(name: str) -> str:
    """A person's name as shown in public: the first character and two stars (张**), whatever its length."""
    chars = name_chars(name)
    return f"{chars[0]}**" if chars else ""


@lru_cache(maxsize=4096)
def _pattern(chars: str) -> re.Pattern[str]:
    return re.compile(_SEPARATOR_CLASS.join(re.escape(ch) for ch in chars))


def mask_person_in(text: str, person: str | None) -> str:
    """``text`` with every occurrence of a person's name masked, however the name is spaced in either."""
    chars = name_chars(person or "")
    if len(chars) < MIN_NAME_CHARS or not text:
        return text
    return _pattern(chars).sub(mask_name(chars), text)


def public_operator_name(name: str, legal_representative: str | None) -> str:
    """The operator's name as the public sees it: its legal representative's name masked inside it.

    The representative is always a natural person; the code is not consulted, since a sole proprietorship
    (91…) carries its owner's name as an individual business (92…) does.
    """
    return mask_person_in(name, legal_representative)


def public_stall_name(name: str, holder_name: str | None) -> str:
    """A stall's name as the public sees it: its holder's name masked inside it, whatever the stall's code."""
    return mask_person_in(name, holder_name)


def search_form(text: str) -> str:
    """What a public name search compares: the text without separators (``listing.public_name_sql`` strips
    the same characters)."""
    return name_chars(text)
