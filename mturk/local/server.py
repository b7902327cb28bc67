"""The local endpoint's HTTP server (``http.server``, one thread per connection).

Routes:

``POST /``
    MTurk's requester API, JSON 1.1: ``X-Amz-Target: MTurkRequesterServiceV20170117.<Op>``,
    every operation of botocore's ``mturk`` model, each request checked against that model.
    Any request carrying an ``Authorization`` header is accepted (signatures are not checked).
``/_control/...``
    Test and demo controls (JSON in, JSON out): ``workers`` (add a simulated worker),
    ``faults`` (make the next ``count`` calls of ``operation`` throttle, fail with a
    ServiceFault, or be applied with the response dropped), ``accept``, ``return``,
    ``submit``, ``qualification_request`` (a worker requests a qualification), ``clock`` (move
    time forward), ``balance``, ``GET state`` (counts, workers, bonuses, messages and the outbox
    of notifications that would have gone to AWS).
``/worker/...`` and ``POST /mturk/externalSubmit``
    The worker's side (:mod:`mturk.local.pages`).
"""

from __future__ import annotations

import ipaddress
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from mturk.local import pages
from mturk.local.store import ApiError, Store

TARGET_PREFIX = "MTurkRequesterServiceV20170117."
MAX_BODY_BYTES = 1_000_000


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: _Server

    def log_message(self, format: str, *args) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    # --- helpers ----------------------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise ApiError("Request body too large.")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, content_type: str, headers=None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: dict, content_type="application/x-amz-json-1.1") -> None:
        self._send(status, json.dumps(data).encode(), content_type)

    def _html(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/html; charset=utf-8")

    def _redirect(self, location: str) -> None:
        self._send(303, b"", "text/plain", {"Location": location})

    @property
    def base_url(self) -> str:
        return (
            f"http://{self.headers.get('Host') or '{}:{}'.format(*self.server.server_address[:2])}"
        )

    def _refused(self, path: str) -> bool:
        """Answer 400 for a Host this endpoint is not served under (links are built from it, and
        a foreign Host is how a web page rebinds its DNS to reach a loopback server), and 403 for
        ``/_control/`` from anywhere but this machine. True when refused."""
        port = self.server.server_address[1]
        hosts = {f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]", self.server.host)}
        if (self.headers.get("Host") or "").lower() not in hosts | self.server.allowed_hosts:
            self._json(400, {"Message": "unknown Host"}, "application/json")
            return True
        if (
            path.startswith("/_control/")
            and not ipaddress.ip_address(self.client_address[0]).is_loopback
        ):
            self._json(403, {"Message": "/_control/ answers only this machine"}, "application/json")
            return True
        return False

    # --- dispatch ---------------------------------------------------------------------------
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if self._refused(path):
            return
        store = self.server.store
        try:
            if path == "/_control/state":
                state = store.counts()
                state.update(
                    workers=store.workers(),
                    bonuses=store.bonuses(),
                    notifications=store.notifications(),
                    outbox=store.outbox(),
                )
                self._json(200, state, "application/json")
                return
            status, text = pages.render_get(store, path, self.base_url, query)
            self._html(status, text)
        except ApiError as exc:
            self._html(400, pages.error_page(exc.message))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if self._refused(path):
            return
        try:
            body = self._body()
        except ApiError as exc:
            self._json(400, exc.body())
            return
        if path == "/":
            self._api(body)
        elif path.startswith("/_control/"):
            self._control(path.removeprefix("/_control/"), body)
        else:
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
            try:
                outcome = pages.render_post(self.server.store, path, form, self.base_url)
            except ApiError as exc:
                self._html(400, pages.error_page(exc.message))
                return
            if outcome[0] == "redirect":
                self._redirect(outcome[1])
            else:
                self._html(outcome[0], outcome[1])

    def _api(self, body: bytes) -> None:
        target = self.headers.get("X-Amz-Target", "")
        if not self.headers.get("Authorization"):
            self._json(
                403,
                {
                    "__type": "MissingAuthenticationTokenException",
                    "Message": "Missing Authentication Token: sign the request (SigV4).",
                },
            )
            return
        if not target.startswith(TARGET_PREFIX):
            self._json(
                400,
                ApiError(f"Unknown target {target!r}.", type_="UnknownOperationException").body(),
            )
            return
        operation = target.removeprefix(TARGET_PREFIX)
        store = self.server.store
        fault = store.fault_take(operation)
        if fault == "throttle":
            self._json(400, ApiError("Rate exceeded", type_="ThrottlingException").body())
            return
        if fault == "fault":
            self._json(
                400,
                ApiError(
                    "Simulated service fault.",
                    "AWS.MechanicalTurk.ServiceFault",
                    type_="ServiceFault",
                ).body(),
            )
            return
        try:
            try:
                params = json.loads(body or b"{}")
            except ValueError as exc:
                raise ApiError(
                    f"The request body is not JSON: {exc}", type_="SerializationException"
                ) from None
            status, answer = 200, store.dispatch(operation, params)
        except ApiError as exc:
            status, answer = 400, exc.body()
        except (ValueError, KeyError, TypeError) as exc:
            status, answer = 400, ApiError(f"Invalid request: {exc}").body()
        except Exception as exc:  # a bug here must still answer, as AWS's 500 would
            self.log_error("%s failed: %r", operation, exc)
            status = 500
            answer = ApiError(
                f"{operation} failed inside the local endpoint: {exc!r}", type_="InternalFailure"
            ).body()
        if fault == "drop":
            # Applied (or refused), but the caller never hears back: close without answering.
            self.close_connection = True
            return
        self._json(status, answer)

    def _control(self, name: str, body: bytes) -> None:
        store = self.server.store
        origin = self.headers.get("Origin")
        if origin is not None and origin != self.base_url:
            # A page (a HIT's framed content included) must not drive the simulation.
            self._json(
                403,
                {"__type": "AccessDenied", "Message": f"Controls refuse origin {origin}."},
                "application/json",
            )
            return
        try:
            data = json.loads(body or b"{}")
            if name == "workers":
                result = store.worker_add(**data)
            elif name == "faults":
                store.fault_set(
                    operation=data["operation"], kind=data["kind"], count=int(data.get("count", 1))
                )
                result = {}
            elif name == "accept":
                result = store.assignment_accept(worker_id=data["worker_id"], hit_id=data["hit_id"])
            elif name == "return":
                result = store.assignment_return(assignment_id=data["assignment_id"])
            elif name == "submit":
                result = store.assignment_submit(
                    assignment_id=data["assignment_id"], answers=data.get("answers", {})
                )
            elif name == "qualification_request":
                result = store.qualification_request(
                    worker_id=data["worker_id"],
                    type_id=data["type_id"],
                    answers=data.get("answers"),
                )
            elif name == "clock":
                store.advance_clock(float(data["seconds"]))
                result = {}
            elif name == "balance":
                store.balance_set(str(data["amount"]))
                result = {}
            else:
                raise ApiError(f"Unknown control {name!r}.")
        except ApiError as exc:
            self._json(400, exc.body(), "application/json")
            return
        except (ValueError, KeyError, TypeError) as exc:
            self._json(
                400,
                {"__type": "RequestError", "Message": f"Invalid control: {exc}"},
                "application/json",
            )
            return
        self._json(200, json.loads(json.dumps(result, default=str)), "application/json")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, store: Store, verbose: bool, allowed_hosts=()) -> None:
        super().__init__(address, _Handler)
        self.store = store
        self.verbose = verbose
        self.host = address[0]
        # Further "host:port" values of the Host header, e.g. a container's published name.
        self.allowed_hosts = {h.lower() for h in allowed_hosts}


class LocalMTurkServer:
    """The endpoint on ``host:port`` (``port=0`` picks a free one) over the state file."""

    def __init__(
        self,
        *,
        state: str,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose=False,
        allowed_hosts=(),
    ):
        self.store = Store(state)
        self._server = _Server((host, port), self.store, verbose, allowed_hosts)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalMTurkServer:
        """Serve in a background thread (tests, ``make demo``)."""
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def serve(*, state: str, host: str = "127.0.0.1", port: int = 8765, verbose: bool = True) -> None:
    server = LocalMTurkServer(state=state, host=host, port=port, verbose=verbose)
    print(f"Local MTurk endpoint on {server.url} (state {state}); workers: {server.url}/worker/")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._server.server_close()
