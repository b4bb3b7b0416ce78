"""The owner page holds: guesses are throttled, answers stay out of caches and indexes, the page gets what it shows."""
from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import template_rendered
from limits import parse_many

from snakes_web import create_app
from snakes_web.config import ConfigError, default, load_settings
from snakes_web.web.feedback import feedback_of
from tests.browser import WATCH_CSP, chromium, live_server
from tests.conftest import FakePredictor

TOKEN = "the-owner-token-4b1d"
SECRET = "the-secret-key-9f3e2a71c04d-5b7e0c1a86f2d4"  # the receipts need 32 bytes or more
WRONG = "a-guess"
OWNER = "/owner"
CLIENT, OTHER = "192.0.2.10", "198.51.100.20"


def owner_app(settings: dict[str, Any], **overrides: Any) -> Any:
    """Create an app with the owner page on (the token ``TOKEN``) and some settings changed."""
    return create_app({**settings, "OWNER_TOKEN": TOKEN, **overrides})


def basic(password: str) -> dict[str, str]:
    """Return the Authorization header of HTTP Basic with ``password`` (any user name will do)."""
    return {"Authorization": "Basic " + base64.b64encode(f"owner:{password}".encode()).decode()}


def visit(client: Any, password: str | None, address: str = CLIENT, **headers: str) -> Any:
    """GET /owner from ``address`` with ``password`` as the Basic password (None: no credentials at all)."""
    sent = {**(basic(password) if password is not None else {}), **headers}
    return client.get(OWNER, headers=sent, environ_base={"REMOTE_ADDR": address})


def statuses(client: Any, password: str | None, times: int, address: str = CLIENT) -> list[int]:
    """Visit the page ``times`` times with one password; return the statuses."""
    return [visit(client, password, address).status_code for _ in range(times)]


# --- the settings ---------------------------------------------------------------------------------------

def test_both_limits_are_on_by_default_and_one_address_alone_cannot_lock_everyone_out() -> None:
    per_client, overall = parse_many(default("OWNER_RATE_LIMIT")), parse_many(default("OWNER_GLOBAL_RATE_LIMIT"))
    assert per_client and overall
    for limit in overall:  # within the global window, one client runs out before the global count does
        assert min(item.amount for item in per_client if item.get_expiry() >= limit.get_expiry()) < limit.amount


@pytest.mark.parametrize("name", ["SNAKES_OWNER_RATE_LIMIT", "SNAKES_OWNER_GLOBAL_RATE_LIMIT"])
def test_a_limit_that_cannot_be_read_stops_the_start_and_names_the_variable(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: "plenty"})


# --- guesses are throttled --------------------------------------------------------------------------

def test_the_failed_attempt_past_the_limit_gets_429_with_retry_after(settings: dict[str, Any]) -> None:
    client = owner_app(settings, OWNER_RATE_LIMIT="3/minute", OWNER_GLOBAL_RATE_LIMIT="").test_client()
    assert statuses(client, WRONG, 3) == [401, 401, 401]
    refused = visit(client, WRONG)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "WWW-Authenticate" not in refused.headers  # nothing to try now: the browser must not ask again


def test_during_a_lock_out_the_right_token_gets_429_too(settings: dict[str, Any]) -> None:
    """Otherwise the throttle would tell a guesser which guess is right."""
    client = owner_app(settings, OWNER_RATE_LIMIT="3/minute", OWNER_GLOBAL_RATE_LIMIT="").test_client()
    statuses(client, WRONG, 3)
    right = visit(client, TOKEN)
    assert right.status_code == 429 and "<h1>Feedback</h1>" not in right.get_data(as_text=True)
    bearer = client.get(OWNER, headers={"Authorization": f"Bearer {TOKEN}"}, environ_base={"REMOTE_ADDR": CLIENT})
    assert bearer.status_code == 429


def test_another_client_is_still_let_in_when_one_is_locked_out(settings: dict[str, Any]) -> None:
    client = owner_app(settings, OWNER_RATE_LIMIT="3/minute", OWNER_GLOBAL_RATE_LIMIT="").test_client()
    assert statuses(client, WRONG, 4)[-1] == 429
    assert visit(client, WRONG, OTHER).status_code == 401
    assert visit(client, TOKEN, OTHER).status_code == 200


def test_the_global_limit_trips_across_clients(settings: dict[str, Any]) -> None:
    client = owner_app(settings, OWNER_RATE_LIMIT="", OWNER_GLOBAL_RATE_LIMIT="3/hour").test_client()
    assert [visit(client, WRONG, f"203.0.113.{n}").status_code for n in range(1, 4)] == [401, 401, 401]
    assert visit(client, TOKEN, "203.0.113.99").status_code == 429  # a new address, the right token


def test_the_owners_own_views_count_nothing(settings: dict[str, Any]) -> None:
    client = owner_app(settings, OWNER_RATE_LIMIT="3/minute", OWNER_GLOBAL_RATE_LIMIT="3/minute").test_client()
    assert statuses(client, TOKEN, 10) == [200] * 10
    assert statuses(client, WRONG, 3) == [401] * 3


def test_a_request_without_credentials_is_not_a_guess(settings: dict[str, Any]) -> None:
    """A browser asks once without credentials before it sends them: the owner's visit must not cost a try."""
    client = owner_app(settings, OWNER_RATE_LIMIT="3/minute", OWNER_GLOBAL_RATE_LIMIT="3/minute").test_client()
    assert statuses(client, None, 10) == [401] * 10
    assert visit(client, TOKEN).status_code == 200


@pytest.mark.parametrize("authorization", ["Basic " + base64.b64encode(b"owner:").decode(), "Bearer ",
                                           "Digest username=owner", "Basic not-base64"],
                         ids=["empty-password", "empty-bearer", "other-scheme", "malformed"])
def test_an_empty_or_malformed_credential_is_a_failed_attempt(settings: dict[str, Any], authorization: str) -> None:
    client = owner_app(settings, OWNER_RATE_LIMIT="3/minute", OWNER_GLOBAL_RATE_LIMIT="").test_client()
    answers = [client.get(OWNER, headers={"Authorization": authorization}, environ_base={"REMOTE_ADDR": CLIENT})
               for _ in range(4)]
    assert [a.status_code for a in answers] == [401, 401, 401, 429]


def test_an_ipv6_client_is_counted_as_its_64(settings: dict[str, Any]) -> None:
    client = owner_app(settings, OWNER_RATE_LIMIT="3/minute", OWNER_GLOBAL_RATE_LIMIT="").test_client()
    assert [visit(client, WRONG, f"2001:db8:1:2::{n}").status_code for n in range(1, 4)] == [401] * 3
    assert visit(client, WRONG, "2001:db8:1:2:ffff::1").status_code == 429  # the same /64
    assert visit(client, WRONG, "2001:db8:1:3::1").status_code == 401  # the next /64


def test_behind_a_proxy_the_client_is_the_address_it_forwards(settings: dict[str, Any]) -> None:
    client = owner_app(settings, PROXY_HOPS=1, OWNER_RATE_LIMIT="3/minute", OWNER_GLOBAL_RATE_LIMIT="").test_client()

    def through_proxy(address: str) -> int:
        return int(visit(client, WRONG, "10.0.0.1", **{"X-Forwarded-For": address}).status_code)

    assert [through_proxy("192.0.2.7") for _ in range(4)] == [401, 401, 401, 429]
    assert through_proxy("192.0.2.8") == 401  # the proxy's other visitors are not locked out with that one


def test_the_lock_out_is_explained_as_a_page_and_as_problem_json_to_a_json_client(settings: dict[str, Any]) -> None:
    client = owner_app(settings, OWNER_RATE_LIMIT="1/minute", OWNER_GLOBAL_RATE_LIMIT="").test_client()
    visit(client, WRONG)
    page = visit(client, TOKEN)
    assert page.mimetype == "text/html" and "Too many failed sign-ins" in page.get_data(as_text=True)
    assert re.search(r"for the next \d+ s", page.get_data(as_text=True))
    problem = visit(client, TOKEN, Accept="application/json")
    assert problem.status_code == 429 and problem.mimetype == "application/problem+json"
    assert problem.get_json()["type"].endswith(":rate-limited") and "Retry-After" in problem.headers


@pytest.mark.parametrize("broken", ["folder", "server"], ids=["data-folder-is-a-file", "database-refuses"])
def test_when_the_counts_cannot_be_kept_the_page_stays_shut(settings: dict[str, Any], tmp_path: Path,
                                                           broken: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    where = ({"DATA_DIR": str(blocker / "data")} if broken == "folder"
             else {"DATABASE_URL": "postgresql://snakes@127.0.0.1:9/nothing", "DATABASE_TIMEOUT": 1.0})
    client = owner_app(settings, **where).test_client()
    for password in (TOKEN, WRONG):
        answer = visit(client, password)
        assert answer.status_code == 503, password
        assert "<h1>Feedback</h1>" not in answer.get_data(as_text=True)


# --- private answers ---------------------------------------------------------------------------------

def test_every_answer_under_owner_is_not_to_be_stored_or_indexed(settings: dict[str, Any]) -> None:
    client = owner_app(settings, OWNER_RATE_LIMIT="1/minute", OWNER_GLOBAL_RATE_LIMIT="").test_client()
    answers = [visit(client, TOKEN), visit(client, None), visit(client, WRONG), visit(client, TOKEN),
               client.post(OWNER, headers=basic(TOKEN))]
    assert [a.status_code for a in answers] == [200, 401, 401, 429, 405]
    for answer in answers:
        assert answer.headers["Cache-Control"] == "no-store", answer.status_code
        assert answer.headers["X-Robots-Tag"] == "noindex, nofollow", answer.status_code
        assert answer.headers["Referrer-Policy"] == "no-referrer", answer.status_code


def test_the_page_asks_robots_not_to_index_it(settings: dict[str, Any]) -> None:
    page = visit(owner_app(settings).test_client(), TOKEN).get_data(as_text=True)
    assert re.search(r'<meta name="robots" content="noindex[^"]*">', page)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_when_off_owner_answers_as_any_unknown_address_does(client: Any, method: str) -> None:
    """An off page is not a page: the same 404, the same headers (none of the owner page's own)."""
    owner, unknown = client.open(OWNER, method=method), client.open("/no-such-page", method=method)
    assert owner.status_code == unknown.status_code == 404
    assert owner.get_data() == unknown.get_data()
    assert sorted(owner.headers.keys()) == sorted(unknown.headers.keys())
    assert "X-Robots-Tag" not in owner.headers


def test_when_off_owner_answers_json_clients_as_any_unknown_address_does(client: Any) -> None:
    headers = {"Accept": "application/json"}
    owner, unknown = client.get(OWNER, headers=headers), client.get("/no-such-page", headers=headers)
    assert (owner.status_code, owner.mimetype, owner.get_data()) == (404, unknown.mimetype, unknown.get_data())


# --- the page gets only what it shows ----------------------------------------------------------------

@pytest.fixture
def rendered() -> Iterator[list[dict[str, Any]]]:
    """Collect the context of every template rendered while the test runs."""
    contexts: list[dict[str, Any]] = []

    def record(sender: Any, template: Any, context: dict[str, Any], **extra: Any) -> None:
        contexts.append(context)

    template_rendered.connect(record)
    yield contexts
    template_rendered.disconnect(record)


def test_the_template_is_not_handed_the_configuration(settings: dict[str, Any],
                                                      rendered: list[dict[str, Any]]) -> None:
    app = owner_app(settings, SECRET_KEY=SECRET)
    assert visit(app.test_client(), TOKEN).status_code == 200
    [context] = rendered
    assert "settings" not in context and "config" not in context
    handed = {name: value for name, value in context.items() if name not in {"g", "request", "session"}}
    assert not any(value is app.config for value in handed.values())
    for value in handed.values():
        assert TOKEN not in repr(value) and SECRET not in repr(value)


def test_no_secret_reaches_the_page(settings: dict[str, Any], postgres_socket: str) -> None:
    from tests.postgres import new_database

    url = new_database(postgres_socket).replace("snakes@", "snakes:db-password-5e1c@")  # trust: any password
    app = owner_app(settings, SECRET_KEY=SECRET, DATABASE_URL=url)
    try:
        page = visit(app.test_client(), TOKEN)
    finally:
        feedback_of(app).store.database.dispose()  # PostgreSQL connections are closed, not left to the GC
    assert page.status_code == 200
    for secret in (SECRET, TOKEN, "db-password-5e1c", url):
        assert secret not in page.get_data(as_text=True), secret


# --- nothing under /owner changes state --------------------------------------------------------------

@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_no_method_that_could_change_state_is_accepted(settings: dict[str, Any], method: str) -> None:
    """/owner only reads: there is nothing a forged cross-site request could make the owner's browser do."""
    answer = owner_app(settings).test_client().open(OWNER, method=method, headers=basic(TOKEN))
    assert answer.status_code == 405
    assert set(answer.headers["Allow"].split(", ")) <= {"GET", "HEAD", "OPTIONS"}


# --- in a browser ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, once for the module."""
    yield from chromium()


def open_owner_page(browser: Any, base: str, password: str) -> tuple[int, str]:
    """Open /owner in a fresh context signed in with ``password``; return the status and the heading."""
    context = browser.new_context(http_credentials={"username": "owner", "password": password})
    context.add_init_script(WATCH_CSP)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    answer = tab.goto(f"{base}{OWNER}")
    heading = tab.inner_text("h1")
    violations = tab.evaluate("window.__cspViolations || []")
    context.close()
    assert violations == [] and errors == [], (violations, errors)
    return answer.status, heading


@pytest.mark.slow
def test_in_a_browser_the_owner_gets_in_and_a_guesser_is_stopped(browser: Any, tmp_path: Path) -> None:
    app = create_app({"PREDICTOR": FakePredictor(), "DATA_DIR": str(tmp_path), "OWNER_TOKEN": TOKEN,
                      "OWNER_RATE_LIMIT": "3/minute", "OWNER_GLOBAL_RATE_LIMIT": ""})
    with live_server(app) as base:
        assert open_owner_page(browser, base, TOKEN) == (200, "Feedback")
        assert open_owner_page(browser, base, TOKEN) == (200, "Feedback")  # the owner's visits cost no try
        assert [open_owner_page(browser, base, WRONG)[0] for _ in range(3)] == [401, 401, 401]
        assert open_owner_page(browser, base, WRONG) == (429, "429 · Too Many Requests")
        assert open_owner_page(browser, base, TOKEN) == (429, "429 · Too Many Requests")
