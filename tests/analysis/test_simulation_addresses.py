"""Each simulated worker of the rehearsal's crowd connects from a loopback address of its own, so
the platform's per-IP limits see a crowd of addresses (as from real workers), not one."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from analysis.simulation.transport import HttpTransport, loopback_address


def test_worker_addresses_are_distinct_loopback_addresses_never_the_servers():
    addresses = [loopback_address(i) for i in range(70_000)]
    assert len(set(addresses)) == len(addresses)
    assert "127.0.0.1" not in addresses
    assert all(
        a.startswith("127.") and all(0 <= int(p) <= 255 for p in a.split(".")) for a in addresses
    )
    assert loopback_address(0) == "127.1.0.1"
    with pytest.raises(ValueError, match="worker index"):
        loopback_address(-1)


def test_the_transport_connects_from_its_workers_address():
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.client_address[0])
            body = b"{}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        for index in (0, 300):
            transport = HttpTransport(
                base_url=base, study="s", retry_seconds=1, source_ip=loopback_address(index)
            )
            status, _ = transport.get_json("state")
            assert status == 200
    finally:
        server.shutdown()
    assert seen == ["127.1.0.1", "127.1.1.46"]
