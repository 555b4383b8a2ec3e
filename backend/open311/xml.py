"""GeoReport v2 XML with the specification's element names, built with ElementTree (which escapes text)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum

from pydantic import BaseModel

# Characters XML 1.0 cannot carry at all, even escaped; ElementTree would write them and break the document.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

#: Element names of list items, by the name of the list (``<attributes><attribute>…``).
ITEM_NAMES: Mapping[str, str] = {"attributes": "attribute", "values": "value"}


def text_of(value: object) -> str:
    """A scalar as element text: booleans as true/false, times in ISO 8601, never a character XML forbids."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        value = value.value
    return _NOT_XML.sub("", str(value))


def _append(parent: ET.Element, name: str, value: object) -> None:
    element = ET.SubElement(parent, name)
    if isinstance(value, BaseModel):
        _fill(element, value)
    elif isinstance(value, list | tuple):
        item_name = ITEM_NAMES.get(name, "item")
        for item in value:
            _append(element, item_name, item)
    else:
        element.text = text_of(value)


def _fill(element: ET.Element, model: BaseModel) -> None:
    for name in type(model).model_fields:
        _append(element, name, getattr(model, name))


def _document(root: ET.Element) -> bytes:
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def models(root_name: str, item_name: str, items: Sequence[BaseModel]) -> bytes:
    """``<root_name><item_name>…</item_name>…</root_name>`` from a list of models."""
    root = ET.Element(root_name)
    for item in items:
        _fill(ET.SubElement(root, item_name), item)
    return _document(root)


def model(root_name: str, item: BaseModel) -> bytes:
    """One model as the document's root element."""
    root = ET.Element(root_name)
    _fill(root, item)
    return _document(root)


def errors(status: int, description: str) -> bytes:
    """The GeoReport error document: ``<errors><error><code/><description/></error></errors>``."""
    root = ET.Element("errors")
    error = ET.SubElement(root, "error")
    ET.SubElement(error, "code").text = str(status)
    ET.SubElement(error, "description").text = text_of(description)
    return _document(root)
