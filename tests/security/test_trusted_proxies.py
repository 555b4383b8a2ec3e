"""X-Forwarded-For is believed only from GONGPING_TRUSTED_PROXIES; rate limits use the address so derived."""

from __future__ import annotations

import ipaddress

import pytest
from fastapi.testclient import TestClient

from backend.config import IPNetwork, Settings, get_settings
from backend.proxies import forwarded_client

SEARCH = "/api/v1/public/operators"
PROXIES: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("192.0.2.1"),
    ipaddress.ip_network("2001:db8::/32"),
)


@pytest.mark.parametrize(
    ("peer", "header", "client"),
    [
        # An untrusted peer is the client whatever it claims.
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),
        # One trusted proxy: the address it appended.
        ("10.1.2.3", ["198.51.100.1"], "198.51.100.1"),
        # Several proxies: right to left past every trusted hop; what the client wrote itself is ignored.
        ("10.1.2.3", ["1.1.1.1, 198.51.100.1, 192.0.2.1, 10.9.9.9"], "198.51.100.1"),
        # The same chain split over two header lines.
        ("10.1.2.3", ["1.1.1.1, 198.51.100.1", "192.0.2.1"], "198.51.100.1"),
        # Ports and IPv6 (bracketed, with a port) as some proxies write them.
        ("[2001:db8::1]", ["198.51.100.1:4711"], "198.51.100.1"),
        ("10.0.0.1", ["[2001:db8::5]:443, [2001:db9::7]:80"], "2001:db9::7"),
        # A dual-stack socket's IPv4-mapped peer is the IPv4 proxy it is.
        ("::ffff:10.0.0.1", ["198.51.100.1"], "198.51.100.1"),
        # Malformed: the header is ignored and the proxy itself is the client.
        ("10.1.2.3", ["198.51.100.1, not-an-address"], "10.1.2.3"),
        ("10.1.2.3", ["198.51.100.1,,"], "10.1.2.3"),
        # Only our own proxies in the chain: the furthest of them.
        ("10.1.2.3", ["10.5.5.5, 192.0.2.1"], "10.5.5.5"),
        # A trusted proxy that sent no header.
        ("10.1.2.3", [], "10.1.2.3"),
    ],
)
def test_forwarded_client(peer: str, header: list[str], client: str) -> None:
    assert forwarded_client(peer, header, PROXIES) == client


def test_no_trusted_proxies_by_default() -> None:
    assert Settings().trusted_proxies == ()
    assert forwarded_client("127.0.0.1", ["198.51.100.1"], ()) == "127.0.0.1"


@pytest.mark.parametrize(
    "value", ["10.0.0.0/8, 192.0.2.1,2001:db8::/32", '["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"]']
)
def test_setting_is_a_list_or_json(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GONGPING_TRUSTED_PROXIES", value)
    assert Settings().trusted_proxies == PROXIES


@pytest.mark.parametrize("value", ["10.0.0.0/33", "proxy.example", '{"a": 1}'])
def test_a_bad_setting_refuses_to_start(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GONGPING_TRUSTED_PROXIES", value)
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings()


def _searches(client: TestClient, peer: str, forwarded: list[str]) -> list[int]:
    """One search per X-Forwarded-For value, all from ``peer``; the status codes."""
    from_peer = TestClient(client.app, raise_server_exceptions=False, client=(peer, 50000))
    return [
        from_peer.get(
            SEARCH, params={"jurisdiction_code": "330106"}, headers={"X-Forwarded-For": f}
        ).status_code
        for f in forwarded
    ]


def test_a_spoofed_header_from_an_untrusted_peer_still_trips_the_limit(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "public_search_rate", "2/minute")
    monkeypatch.setattr(get_settings(), "trusted_proxies", PROXIES)
    assert _searches(client, "203.0.113.9", ["1.1.1.1", "2.2.2.2", "3.3.3.3"]) == [200, 200, 429]


def test_the_header_from_a_trusted_proxy_names_the_client(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "public_search_rate", "2/minute")
    monkeypatch.setattr(get_settings(), "trusted_proxies", PROXIES)
    # Three clients behind one proxy each have their own limit; the same client behind two proxies shares one.
    assert _searches(client, "10.1.2.3", ["1.1.1.1", "2.2.2.2", "3.3.3.3"]) == [200, 200, 200]
    assert _searches(client, "10.1.2.3", ["9.9.9.9, 192.0.2.1", "8.8.8.8, 9.9.9.9"]) == [200, 200]
    assert _searches(client, "10.7.7.7", ["9.9.9.9"]) == [429]
    # A malformed header counts against the proxy itself, not a made-up client.
    assert _searches(client, "10.1.2.3", ["x"]) == [200]
    assert _searches(client, "10.1.2.3", ["x", "y"]) == [200, 429]


def test_gongping_serve_turns_uvicorns_proxy_headers_off(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from backend.cli import app

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda target, **options: seen.update(options, target=target))
    result = CliRunner().invoke(app, ["serve", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert seen["target"] == "backend.asgi:app" and seen["port"] == 8123 and seen["proxy_headers"] is False
