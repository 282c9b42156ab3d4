"""Hole 3 (identity) and the Host allow-list of hole 2, without a browser: who the access list lets in,
when a change to it takes effect, and which host names the console answers to."""
from __future__ import annotations

import pytest

from lib.access import AccessPolicy, allowed_hosts, host_allowed, verified_email
from lib.auth import LOCAL_OPERATOR, Forbidden

ACCESS = '[access]\noperators = ["olga.ops@example.com", "local-operator@localhost"]\nstaff = ["@example.com"]\n'


def policy_on_file(tmp_path, text: str) -> tuple[AccessPolicy, object]:
    path = tmp_path / "console.toml"
    path.write_text(text, encoding="utf-8")
    import tomllib
    return AccessPolicy.from_config(tomllib.loads(text), path=path), path


def test_with_sign_in_the_local_operator_address_is_nobody_even_when_listed(tmp_path):
    policy, _ = policy_on_file(tmp_path, ACCESS)
    policy.local_operator = False
    assert policy.user(LOCAL_OPERATOR.email) is None
    with pytest.raises(Forbidden):
        policy.authorize(LOCAL_OPERATOR.email, "purge")


def test_without_sign_in_the_local_operator_is_the_operator(tmp_path):
    policy, _ = policy_on_file(tmp_path, "")
    assert policy.authorize(LOCAL_OPERATOR.email, "purge").role == "operator"


def test_removing_someone_from_access_takes_effect_at_their_next_check(tmp_path):
    policy, path = policy_on_file(tmp_path, ACCESS)
    assert policy.role_for("olga.ops@example.com") == "operator"
    path.write_text('[access]\nstaff = ["@example.com"]\nviewers = ["@partner.example"]\n', encoding="utf-8")
    assert policy.role_for("olga.ops@example.com") == "staff"
    assert policy.role_for("vera@partner.example") == "viewer"


def test_a_broken_access_file_lets_nobody_in_and_says_why(tmp_path):
    policy, path = policy_on_file(tmp_path, ACCESS)
    path.write_text('[access]\noperators = "olga.ops@example.com"\n', encoding="utf-8")
    assert policy.role_for("olga.ops@example.com") is None
    assert "could not be read" in policy.problem
    path.write_text(ACCESS + "\n", encoding="utf-8")
    assert policy.role_for("olga.ops@example.com") == "operator" and policy.problem is None


@pytest.mark.parametrize("claims, expected", [
    ({"email": "a@example.com", "email_verified": True}, "a@example.com"),
    ({"email": "a@example.com", "email_verified": "true"}, "a@example.com"),
    ({"email": "a@example.com"}, "a@example.com"),  # providers that never send the claim
    ({"email": "a@example.com", "email_verified": False}, None),
    ({"email": "a@example.com", "email_verified": "false"}, None),
    ({"email": "a@example.com", "email_verified": None}, None),
    ({"email_verified": True}, None),
])
def test_only_a_verified_email_identifies_someone(claims, expected):
    assert verified_email(claims) == expected


@pytest.mark.parametrize("host, allowed", [
    ("127.0.0.1:8501", True), ("localhost:8501", True), ("LOCALHOST.:8501", True), ("[::1]:8501", True),
    ("127.0.0.1", True), (None, True),
    ("rebind.example.test:8501", False), ("127.0.0.1.nip.io:8501", False), ("evil@127.0.0.1:8501", False),
    ("127.0.0.1:notaport", False), ("", False), ("127.0.0.1/x", False),
])
def test_a_loopback_console_answers_only_to_loopback_names(host, allowed):
    assert host_allowed(host, allowed_hosts("127.0.0.1")) is allowed


def test_a_console_answers_to_its_sign_in_url_and_configured_names():
    hosts = allowed_hosts("0.0.0.0", configured=["console.example.com", "*.corp.example"],
                          urls=["https://sso-console.example.com/oauth2callback", None])
    assert host_allowed("console.example.com", hosts)
    assert host_allowed("a.corp.example:443", hosts)
    assert host_allowed("sso-console.example.com", hosts)
    assert host_allowed("localhost:8501", hosts)
    assert not host_allowed("corp.example.evil.test", hosts)
    assert not host_allowed("10.0.0.7:8501", hosts)


def test_a_console_on_one_address_answers_to_that_address_only():
    hosts = allowed_hosts("10.0.0.5")
    assert host_allowed("10.0.0.5:8501", hosts)
    assert not host_allowed("127.0.0.1:8501", hosts)
