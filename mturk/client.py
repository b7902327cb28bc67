"""The boto3 client for Amazon Mechanical Turk: sandbox (the default), production or the local
endpoint (``manage.py mturk_local_server``), and the errors our services raise.

Only ``mturk.services`` calls the client (STYLE habit 10), always through :func:`mturk_call`,
which turns botocore's errors into :class:`MTurkError` subclasses. botocore's "standard" retry
mode retries throttling, connection errors and HTTP 5xx answers with exponential backoff up to
``MTURK_MAX_ATTEMPTS`` attempts; MTurk's ordinary faults (HTTP 400 ``ServiceFault`` and
``RequestError``) are never retried and surface as :class:`MTurkServiceError`.

Credentials come from boto3's chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``, an instance role); they are never read from or written to the database.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

REGION = "us-east-1"
SANDBOX_URL = "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
PRODUCTION_URL = "https://mturk-requester.us-east-1.amazonaws.com"
ENVIRONMENTS = ("sandbox", "production", "local")
# MTurk throttles with these codes; botocore's standard mode already retries them.
THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestThrottled"}
)
# Without real credentials the local endpoint still needs a signed request (it checks only that
# an Authorization header is present); these never reach AWS.
LOCAL_CREDENTIALS = {"aws_access_key_id": "LOCALMTURK", "aws_secret_access_key": "local-only"}


class MTurkError(Exception):
    """Base of every error raised by the MTurk module."""


class MTurkConfigError(MTurkError):
    """The client cannot be built (credentials, environment, production switch, settings)."""


class MTurkServiceError(MTurkError):
    """MTurk answered with an error (``code`` is its ``__type``, ``turk_code`` its
    ``TurkErrorCode``), or could not be reached (``code`` ``"ConnectionError"``)."""

    def __init__(self, *, operation: str, code: str, message: str, turk_code: str = "") -> None:
        self.operation = operation
        self.code = code
        self.message = message
        self.turk_code = turk_code
        detail = f" ({turk_code})" if turk_code else ""
        super().__init__(f"MTurk {operation} failed: {code}{detail}: {message}")


class MTurkThrottled(MTurkServiceError):
    """MTurk kept throttling after every retry botocore allowed; try again later."""


class MTurkUnreachable(MTurkServiceError):
    """The connection failed after every retry; the call may or may not have been applied."""


def _allow_production() -> bool:
    value = os.environ.get("MTURK_ALLOW_PRODUCTION", "")
    if value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    return bool(getattr(settings, "MTURK_ALLOW_PRODUCTION", False))


def local_endpoint_url() -> str:
    """URL of the local endpoint: setting or variable ``MTURK_LOCAL_URL``."""
    url = os.environ.get("MTURK_LOCAL_URL") or getattr(settings, "MTURK_LOCAL_URL", "")
    return url or "http://127.0.0.1:8765"


def _local_url_checked(url: str) -> str:
    """``url`` if it can be a local endpoint: http(s) and not an Amazon host. A "local" client
    signs with the real AWS credentials when there are any, so pointed at MTurk's own endpoint
    (in any spelling) it would spend money without the production switches."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise MTurkConfigError(f"MTURK_LOCAL_URL {url!r} is not an http(s) URL.")
    if host == "amazonaws.com" or host.endswith(".amazonaws.com"):
        raise MTurkConfigError(
            f"MTURK_LOCAL_URL {url!r} points at Amazon, not a local endpoint; use the sandbox or "
            "production environment (production needs both switches)."
        )
    return url


def mturk_client(
    *,
    environment: str | None = None,
    endpoint_url: str | None = None,
    study_allows_production: bool = False,
) -> Any:
    """Build the boto3 ``mturk`` client.

    Parameters
    ----------
    environment : {"sandbox", "production", "local"}, optional
        Default: setting ``MTURK_ENVIRONMENT`` (``"sandbox"``).
    endpoint_url : str, optional
        Overrides the endpoint (only for ``"local"``; default ``MTURK_LOCAL_URL``).
    study_allows_production : bool
        The study's own switch (``study.mturk["production"]``); production needs it *and*
        ``MTURK_ALLOW_PRODUCTION=1`` in the environment or settings.

    Raises
    ------
    MTurkConfigError
        Unknown environment, production without both switches, or no AWS credentials.
    """
    environment = environment or getattr(settings, "MTURK_ENVIRONMENT", "sandbox")
    if environment not in ENVIRONMENTS:
        raise MTurkConfigError(
            f"Unknown MTurk environment {environment!r}; use one of {', '.join(ENVIRONMENTS)}."
        )
    if environment == "production":
        if not study_allows_production:
            raise MTurkConfigError(
                "Production MTurk refused: the study does not allow it "
                '(set "production: true" in its mturk settings).'
            )
        if not _allow_production():
            raise MTurkConfigError(
                "Production MTurk refused: set MTURK_ALLOW_PRODUCTION=1 in the environment to "
                "spend real money."
            )
        url = PRODUCTION_URL
    elif environment == "sandbox":
        url = SANDBOX_URL
    else:
        url = _local_url_checked(endpoint_url or local_endpoint_url())
    if endpoint_url and environment != "local":
        raise MTurkConfigError("endpoint_url can only be given for the local environment.")

    # boto3 loads with the first client, not with this module: the web process and
    # ``manage.py check`` import the mturk app (its tasks and receivers) without calling AWS.
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    credentials = session.get_credentials()
    keys: dict[str, str] = {}
    if credentials is None:
        if environment != "local":
            raise MTurkConfigError(
                "No AWS credentials found for MTurk: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE naming a profile in ~/.aws/credentials."
            )
        keys = dict(LOCAL_CREDENTIALS)
    config = Config(
        region_name=REGION,
        retries={
            "mode": "standard",
            # total attempts, the first included
            "total_max_attempts": int(getattr(settings, "MTURK_MAX_ATTEMPTS", 5)),
        },
        connect_timeout=float(getattr(settings, "MTURK_CONNECT_TIMEOUT", 10)),
        read_timeout=float(getattr(settings, "MTURK_READ_TIMEOUT", 30)),
    )
    return session.client("mturk", endpoint_url=url, config=config, **keys)


def client_environment(client: Any) -> str:
    """``"sandbox"``, ``"production"`` or ``"local"``, read from the client's endpoint."""
    url = client.meta.endpoint_url.rstrip("/")
    if url == SANDBOX_URL:
        return "sandbox"
    if url == PRODUCTION_URL:
        return "production"
    return "local"


def mturk_call(client: Any, operation: str, **params: Any) -> dict:
    """Call ``client.<operation>(**params)``; botocore's errors become :class:`MTurkError`.

    ``operation`` is the snake_case method name (``"create_hit_type"``).
    """
    import botocore.exceptions  # loaded already by the client's boto3

    try:
        return getattr(client, operation)(**params)
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "Unknown")
        message = error.get("Message", str(exc))
        turk_code = exc.response.get("TurkErrorCode", "") or error.get("TurkErrorCode", "")
        cls = MTurkThrottled if code in THROTTLING_CODES else MTurkServiceError
        raise cls(operation=operation, code=code, message=message, turk_code=turk_code) from exc
    except (
        botocore.exceptions.ConnectionError,
        botocore.exceptions.HTTPClientError,
    ) as exc:
        raise MTurkUnreachable(
            operation=operation, code="ConnectionError", message=str(exc)
        ) from exc
    except botocore.exceptions.NoCredentialsError as exc:
        raise MTurkConfigError(
            "No AWS credentials found for MTurk: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE."
        ) from exc
    except botocore.exceptions.ParamValidationError as exc:
        raise MTurkServiceError(
            operation=operation, code="ParamValidationError", message=str(exc)
        ) from exc
