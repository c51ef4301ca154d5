"""The Vonage client's mapping of HTTP answers and transport failures to rotator's errors, one call
at a time (respx; the rest of the suite talks to the simulator over real HTTP)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from rotator.config import VonageConfig
from rotator.errors import (
    VonageAuthError,
    VonageError,
    VonageForbiddenError,
    VonageLastSecretError,
    VonageNotFoundError,
    VonageProtocolError,
    VonageRateLimitError,
    VonageSecretLimitError,
    VonageServerError,
    VonageTransportError,
    VonageValidationError,
)
from rotator.ratelimit import RateLimiter
from rotator.secret import Credentials, Secret
from rotator.vonage import VonageClient

API = "https://api.vonage.test"
REST = "https://rest.vonage.test"
KEY = "abcd1234"
SUB = "sub00001"
SECRETS = f"{API}/accounts/{SUB}/secrets"
SECRET_ID = "ad6dc56f-07b5-46e1-a527-85530e625800"
OLDER = "01234567-aaaa-bbbb-cccc-defdefdefdef"
NEWER = "1b1b1b1b-1b1b-1b-1b1b-1b1b1b1b1b1b"  # the shape an SDK fixture records
NEW = "48898273-7ae1-4ce4-8125-a71058ca6069"
BALANCE = f"{REST}/account/get-balance"
ERRORS = "https://developer.nexmo.com/api-errors/account/secret-management"
ADMIN = Credentials(KEY, Secret("Admin1SecretValue"))


class Client:
    """A VonageClient on a respx router, recording every sleep instead of sleeping."""

    def __init__(self, router: respx.MockRouter, **config: Any) -> None:
        self.sleeps: list[float] = []
        self.limiter_sleeps: list[float] = []
        settings = {"primary_api_key": KEY, "api_url": API, "rest_url": REST, "max_retries": 2}
        self.vonage = VonageClient(
            VonageConfig(**{**settings, **config}),
            limiter=RateLimiter(1000, sleep=self.limiter_sleeps.append),
            transport=httpx.MockTransport(router.handler),
            sleep=self.sleeps.append,
        )


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.MockRouter(assert_all_called=False) as mocked:
        yield mocked


@pytest.fixture
def client(router: respx.MockRouter) -> Iterator[Client]:
    made = Client(router)
    yield made
    made.vonage.close()


def problem(kind: str, status: int, **extra: Any) -> httpx.Response:
    body = {"type": f"{ERRORS}#{kind}", "title": "t", "detail": f"detail of {kind}", **extra}
    return httpx.Response(status, json=body, headers={"X-Request-Id": "req-1"})


def secret_item(secret_id: str, created: str = "2026-01-01T10:00:00Z") -> dict[str, Any]:
    return {"id": secret_id, "created_at": created, "_links": {"self": {"href": "/x"}}}


def listing(*items: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"_embedded": {"secrets": list(items)}})


# -- answers that work -------------------------------------------------------------------------


def test_list_secrets_returns_them_oldest_first(client: Client, router: respx.MockRouter) -> None:
    """Secrets come back sorted by creation time, with the request id."""
    router.get(SECRETS).mock(
        return_value=httpx.Response(
            200,
            json={
                "_embedded": {
                    "secrets": [
                        secret_item(NEWER, "2026-02-01T00:00:00Z"),
                        secret_item(OLDER, "2026-01-01T00:00:00Z"),
                    ]
                }
            },
            headers={"X-Request-Id": "abc"},
        )
    )
    reply = client.vonage.list_secrets(ADMIN, SUB)
    assert [s.id for s in reply.secrets] == [OLDER, NEWER]
    assert reply.request_id == "abc"


def test_create_sends_the_secret_only_in_the_body(client: Client, router: respx.MockRouter) -> None:
    """The new secret travels in the JSON body; the URL never holds it; auth is HTTP Basic."""
    route = router.post(SECRETS).mock(return_value=httpx.Response(201, json=secret_item(NEW)))
    reply = client.vonage.create_secret(ADMIN, SUB, Secret("New1SecretValue"))
    assert reply.created is not None
    assert reply.created.id == NEW
    sent = route.calls.last.request
    assert json.loads(sent.content) == {"secret": "New1SecretValue"}
    assert "New1SecretValue" not in str(sent.url)
    expected = base64.b64encode(f"{KEY}:Admin1SecretValue".encode()).decode()
    assert sent.headers["Authorization"] == f"Basic {expected}"


def test_get_balance_authenticates_as_the_given_key(
    client: Client, router: respx.MockRouter
) -> None:
    """The balance call is how a secret is proven to work: it must succeed with its value."""
    router.get(BALANCE).mock(return_value=httpx.Response(200, json={"value": 10.5}))
    assert client.vonage.get_balance(Credentials(SUB, Secret("Sub1SecretValue"))).request_id is None


def test_long_request_ids_are_truncated(client: Client, router: respx.MockRouter) -> None:
    """An X-Request-Id is stored in a 64-character column, so it is cut to fit."""
    router.get(BALANCE).mock(
        return_value=httpx.Response(200, json={"value": 1}, headers={"X-Request-Id": "r" * 200})
    )
    assert client.vonage.get_balance(ADMIN).request_id == "r" * 64


# -- error answers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "response", "error"),
    [
        ("GET", SECRETS, problem("unauthorized", 401), VonageAuthError),
        ("POST", SECRETS, problem("add-excess-secret", 403), VonageSecretLimitError),
        ("DELETE", f"{SECRETS}/{SECRET_ID}", problem("delete-last-secret", 403),
         VonageLastSecretError),
        ("GET", SECRETS, problem("forbidden", 403), VonageForbiddenError),
        ("POST", SECRETS, problem("validation", 400, invalid_parameters=[{"name": "secret"}]),
         VonageValidationError),
        ("POST", SECRETS, problem("add-excess-secret", 400), VonageSecretLimitError),
        ("GET", SECRETS, problem("invalid-api-key", 404), VonageNotFoundError),
        ("GET", SECRETS, problem("teapot", 418), VonageError),
    ],
    ids=["401", "403-excess", "403-last", "403-other", "400-validation", "400-excess", "404",
         "418"],
)  # fmt: skip
def test_error_answers_map_to_one_error_each(
    client: Client,
    router: respx.MockRouter,
    method: str,
    url: str,
    response: httpx.Response,
    error: type[VonageError],
) -> None:
    """Each documented error answer becomes its specific error, with status and request id."""
    router.route(method=method, url=url).mock(return_value=response)
    calls = {
        "GET": lambda: client.vonage.list_secrets(ADMIN, SUB),
        "POST": lambda: client.vonage.create_secret(ADMIN, SUB, Secret("New1SecretValue")),
        "DELETE": lambda: client.vonage.revoke_secret(ADMIN, SUB, SECRET_ID),
    }
    with pytest.raises(VonageError) as caught:
        calls[method]()
    assert type(caught.value) is error
    assert caught.value.status == response.status_code
    assert caught.value.request_id == "req-1"
    assert f"HTTP {response.status_code}" in str(caught.value)


def test_validation_outside_post_secrets_is_validation(
    client: Client, router: respx.MockRouter
) -> None:
    """A 400 on any other call is a validation error, never a secret-limit one."""
    router.get(BALANCE).mock(return_value=problem("bad", 400))
    with pytest.raises(VonageValidationError):
        client.vonage.get_balance(ADMIN)


def test_error_body_that_is_not_json_still_maps_by_status(
    client: Client, router: respx.MockRouter
) -> None:
    """An HTML error page from a proxy is mapped by its status alone."""
    router.get(SECRETS).mock(return_value=httpx.Response(401, text="<html>nope</html>"))
    with pytest.raises(VonageAuthError):
        client.vonage.list_secrets(ADMIN, SUB)


# -- retries -----------------------------------------------------------------------------------


def test_429_is_retried_after_retry_after(client: Client, router: respx.MockRouter) -> None:
    """A 429 with Retry-After: 7 waits exactly 7 seconds, then succeeds."""
    route = router.get(SECRETS).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), listing()]
    )
    assert client.vonage.list_secrets(ADMIN, SUB).secrets == []
    assert route.call_count == 2
    assert client.sleeps == [7.0]
    assert client.vonage.rate_limited == 1


def test_429_pauses_every_caller_sharing_the_limiter(
    client: Client, router: respx.MockRouter
) -> None:
    """After a 429 the shared limiter holds back the next call for the Retry-After time."""
    router.get(SECRETS).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), listing()]
    )
    client.vonage.list_secrets(ADMIN, SUB)
    assert len(client.limiter_sleeps) == 1
    assert 6.0 < client.limiter_sleeps[0] <= 7.0


def test_retry_after_within_the_cap_is_waited_in_full(
    client: Client, router: respx.MockRouter
) -> None:
    """A Retry-After of two minutes (under vonage.max_retry_after) is waited, then retried."""
    router.get(SECRETS).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "120"}), listing()]
    )
    client.vonage.list_secrets(ADMIN, SUB)
    assert client.sleeps == [120.0]


def test_retry_after_beyond_the_cap_fails_at_once(client: Client, router: respx.MockRouter) -> None:
    """A Retry-After of an hour raises VonageRateLimitError without a retry or a sleep."""
    route = router.get(SECRETS).mock(
        return_value=httpx.Response(429, headers={"Retry-After": "3600"})
    )
    with pytest.raises(VonageRateLimitError, match="max_retry_after") as caught:
        client.vonage.list_secrets(ADMIN, SUB)
    assert caught.value.retry_after == 3600.0
    assert (route.call_count, client.sleeps) == (1, [])


def test_429_without_retry_after_backs_off(client: Client, router: respx.MockRouter) -> None:
    """Without Retry-After the usual exponential backoff applies."""
    router.get(SECRETS).mock(side_effect=[httpx.Response(429), listing()])
    client.vonage.list_secrets(ADMIN, SUB)
    assert client.sleeps == [0.25]


def test_persistent_429_is_raised_with_retry_after(
    client: Client, router: respx.MockRouter
) -> None:
    """When retries run out the 429 surfaces as VonageRateLimitError carrying Retry-After."""
    router.get(SECRETS).mock(return_value=httpx.Response(429, headers={"Retry-After": "2"}))
    with pytest.raises(VonageRateLimitError) as caught:
        client.vonage.list_secrets(ADMIN, SUB)
    assert caught.value.retry_after == 2.0


def test_5xx_is_retried_with_backoff_then_raised(client: Client, router: respx.MockRouter) -> None:
    """A GET failing with 503 every time is tried 1 + max_retries times, then raised."""
    route = router.get(SECRETS).mock(return_value=problem("unavailable", 503))
    with pytest.raises(VonageServerError) as caught:
        client.vonage.list_secrets(ADMIN, SUB)
    assert route.call_count == 3
    assert client.sleeps == [0.25, 0.5]
    assert caught.value.status == 503


def test_5xx_then_success_is_ridden_out(client: Client, router: respx.MockRouter) -> None:
    """A transient 502 on a GET is retried and the answer used."""
    router.get(BALANCE).mock(
        side_effect=[httpx.Response(502), httpx.Response(200, json={"value": 1})]
    )
    client.vonage.get_balance(ADMIN)
    assert client.sleeps == [0.25]


def test_post_is_never_retried(client: Client, router: respx.MockRouter) -> None:
    """A POST that fails is raised at once: the caller reconciles by listing."""
    route = router.post(SECRETS).mock(return_value=problem("unavailable", 503))
    with pytest.raises(VonageServerError):
        client.vonage.create_secret(ADMIN, SUB, Secret("New1SecretValue"))
    assert route.call_count == 1


def test_post_is_repeated_after_a_429(client: Client, router: respx.MockRouter) -> None:
    """A 429 was refused before Vonage processed it, so even a POST is safely sent again."""
    route = router.post(SECRETS).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "3"}),
            httpx.Response(201, json=secret_item(NEW)),
        ]
    )
    reply = client.vonage.create_secret(ADMIN, SUB, Secret("New1SecretValue"))
    assert reply.created is not None
    assert reply.created.id == NEW
    assert route.call_count == 2
    assert client.sleeps == [3.0]


def test_post_timeout_may_have_applied(client: Client, router: respx.MockRouter) -> None:
    """A POST without answer is reported as possibly applied, and not repeated."""
    route = router.post(SECRETS).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(VonageTransportError) as caught:
        client.vonage.create_secret(ADMIN, SUB, Secret("New1SecretValue"))
    assert caught.value.maybe_applied is True
    assert caught.value.status is None
    assert route.call_count == 1


def test_post_that_never_connected_did_not_apply(client: Client, router: respx.MockRouter) -> None:
    """A refused connection cannot have applied anything."""
    router.post(SECRETS).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(VonageTransportError) as caught:
        client.vonage.create_secret(ADMIN, SUB, Secret("New1SecretValue"))
    assert caught.value.maybe_applied is False
    assert "cannot connect" in str(caught.value)


def test_get_timeout_is_retried(client: Client, router: respx.MockRouter) -> None:
    """A GET that timed out is simply asked again."""
    router.get(SECRETS).mock(side_effect=[httpx.ReadTimeout("slow"), listing()])
    assert client.vonage.list_secrets(ADMIN, SUB).secrets == []
    assert client.sleeps == [0.25]


def test_persistent_transport_failure_on_get_is_raised(
    client: Client, router: respx.MockRouter
) -> None:
    """A GET that never gets an answer ends as VonageTransportError, not applied."""
    router.get(SECRETS).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(VonageTransportError) as caught:
        client.vonage.list_secrets(ADMIN, SUB)
    assert caught.value.maybe_applied is False
    assert "no answer within 10s" in str(caught.value)


# -- DELETE: idempotent by reconciliation ------------------------------------------------------


def test_delete_retried_after_a_reset_then_404_counts_as_done(
    client: Client, router: respx.MockRouter
) -> None:
    """A DELETE whose answer was lost, retried and answered 404, already did its job."""
    route = router.delete(f"{SECRETS}/{SECRET_ID}").mock(
        side_effect=[httpx.ReadError("reset"), problem("invalid-id", 404)]
    )
    client.vonage.revoke_secret(ADMIN, SUB, SECRET_ID)
    assert route.call_count == 2


def test_delete_retried_after_a_5xx_then_404_counts_as_done(
    client: Client, router: respx.MockRouter
) -> None:
    """A 5xx may have come after the delete applied: a 404 on the retry means done."""
    router.delete(f"{SECRETS}/{SECRET_ID}").mock(
        side_effect=[problem("unavailable", 503), problem("invalid-id", 404)]
    )
    client.vonage.revoke_secret(ADMIN, SUB, SECRET_ID)


def test_delete_of_an_unknown_id_is_not_found(client: Client, router: respx.MockRouter) -> None:
    """A first-attempt 404 is a real error: that secret id does not exist."""
    router.delete(f"{SECRETS}/{SECRET_ID}").mock(return_value=problem("invalid-id", 404))
    with pytest.raises(VonageNotFoundError):
        client.vonage.revoke_secret(ADMIN, SUB, SECRET_ID)


def test_delete_404_after_a_refused_connection_is_not_found(
    client: Client, router: respx.MockRouter
) -> None:
    """A connection that was refused applied nothing, so the later 404 is a real one."""
    router.delete(f"{SECRETS}/{SECRET_ID}").mock(
        side_effect=[httpx.ConnectError("refused"), problem("invalid-id", 404)]
    )
    with pytest.raises(VonageNotFoundError):
        client.vonage.revoke_secret(ADMIN, SUB, SECRET_ID)


# -- answers that are not what Vonage documents ------------------------------------------------


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b'{"_embedded": {"secrets": [', "not JSON"),
        (b"<html>Bad Gateway</html>", "not JSON"),
        (b"[1, 2]", "JSON that is not an object"),
        (b'{"_links": {}}', "without _embedded.secrets"),
        (b'{"_embedded": {"secrets": [{"created_at": "2026-01-01T00:00:00Z"}]}}', "without an id"),
        (
            b'{"_embedded": {"secrets": [{"id": "ad6dc56f", "created_at": "yesterday"}]}}',
            "created_at",
        ),
    ],
    ids=["truncated", "html", "array", "no-embedded", "no-id", "bad-date"],
)
def test_undocumented_listing_is_a_protocol_error(
    client: Client, router: respx.MockRouter, body: bytes, what: str
) -> None:
    """A 200 whose body is not the documented shape raises VonageProtocolError, not retried."""
    route = router.get(SECRETS).mock(return_value=httpx.Response(200, content=body))
    with pytest.raises(VonageProtocolError, match=what):
        client.vonage.list_secrets(ADMIN, SUB)
    assert route.call_count == 1


def test_body_over_one_mebibyte_is_refused(client: Client, router: respx.MockRouter) -> None:
    """An answer larger than 1 MiB is not read to the end: VonageProtocolError."""
    huge = b'{"_embedded": {"secrets": []}, "pad": "' + b"x" * (2 << 20) + b'"}'
    router.get(SECRETS).mock(return_value=httpx.Response(200, content=huge))
    with pytest.raises(VonageProtocolError, match="larger than 1024 KiB"):
        client.vonage.list_secrets(ADMIN, SUB)


def test_balance_without_value_is_a_protocol_error(
    client: Client, router: respx.MockRouter
) -> None:
    """A balance answer without 'value' proves nothing about the credentials."""
    router.get(BALANCE).mock(return_value=httpx.Response(200, json={"autoReload": False}))
    with pytest.raises(VonageProtocolError, match="without 'value'"):
        client.vonage.get_balance(ADMIN)


def test_created_answer_without_id_is_a_protocol_error(
    client: Client, router: respx.MockRouter
) -> None:
    """A 201 that does not say which secret was made cannot be trusted."""
    router.post(SECRETS).mock(return_value=httpx.Response(201, json={"created_at": "x"}))
    with pytest.raises(VonageProtocolError, match="without an id"):
        client.vonage.create_secret(ADMIN, SUB, Secret("New1SecretValue"))


def test_errors_never_carry_the_secret(client: Client, router: respx.MockRouter) -> None:
    """Neither the admin's nor the new secret appears in any raised error's text."""
    router.post(SECRETS).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(VonageTransportError) as caught:
        client.vonage.create_secret(ADMIN, SUB, Secret("New1SecretValue"))
    text = f"{caught.value} {caught.value!r} {caught.value.__cause__}"
    leaked = [v for v in ("New1SecretValue", "Admin1SecretValue") if v in text]
    assert leaked == []
