"""The topic catalogue: every topic has a consumer, and every producer emits its topic's payload keys."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_type_hints

from backend.notices.handlers import HANDLERS
from backend.outbox import relay
from backend.outbox.topics import PAYLOADS, TOPICS

ROOT = Path(__file__).resolve().parents[3]


def test_every_topic_has_a_payload_and_a_consumer() -> None:
    assert set(PAYLOADS) == TOPICS
    unconsumed = {topic for topic in TOPICS if not relay.TOPIC_TASKS.get(topic)}
    assert unconsumed == set()
    assert set(relay.TOPIC_TASKS) <= TOPICS and set(HANDLERS) <= TOPICS


def _emitted_payloads() -> list[tuple[str, str, set[str]]]:
    """(where, topic, payload keys) of every ``emit`` call with a literal topic and payload in the backend."""
    found: list[tuple[str, str, set[str]]] = []
    for path in sorted((ROOT / "backend").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or len(node.args) < 3:
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            topic, payload = node.args[1], node.args[2]
            if name != "emit" or not isinstance(payload, ast.Dict):
                continue
            if isinstance(topic, ast.Constant) and isinstance(topic.value, str):
                keys = {
                    k.value for k in payload.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)
                }
                found.append((f"{path.relative_to(ROOT)}:{node.lineno}", topic.value, keys))
    return found


def test_producers_emit_the_catalogued_payload() -> None:
    emitted = _emitted_payloads()
    assert len(emitted) >= 8  # the walk finds the producers
    for where, topic, keys in emitted:
        assert topic in TOPICS, where
        payload = PAYLOADS[topic]  # type: ignore[index]
        required = set(getattr(payload, "__required_keys__", ()))
        allowed = set(get_type_hints(payload))
        assert required <= keys <= allowed, (where, topic, keys ^ required)
