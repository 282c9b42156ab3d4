"""console.toml catalogue: invalid TOML, missing sections, wrong types, unreadable files.

Each case must end in ConfigError whose message names the file and the section or key, says what
is wrong and what to do, and never echoes a secret pasted into the file. A console that refuses
its configuration touches nothing: the job history is left as it was.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from lib.access import AccessPolicy
from lib.config import ConfigError, ConsoleConfig, Secret, Settings
from lib.services import build_services
from lib.store import JobStore

CANARY = "rpa_CANARY_7F3C9D2E41B84A6F9E0D5C1B2A3F4E5D"

VOLUME = '[volume]\nid = "vol-1"\n'
IMAGE = '[endpoints.image]\nid = "img-1"\n'
TRAINING = '[endpoints.training]\nid = "trn-1"\n'
SPECIAL = '[endpoints.special]\nid = "spc-1"\n'
PRICES = '[prices.flex_per_s]\nADA_24 = 0.00031\n'
VALID = VOLUME + IMAGE + TRAINING + SPECIAL + PRICES


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    says: tuple[str, ...]
    # What to do, when the message points at the fix instead of using the shared phrases.
    advice: tuple[str, ...] = ()


def with_image(*lines: str) -> str:
    return VOLUME + IMAGE + "\n".join(lines) + "\n" + TRAINING + SPECIAL + PRICES


CASES = [
    Case("config.invalid-toml", VALID + 'name = "unterminated\n', ("is not valid TOML", "line 11"),
         advice=("(at line",)),
    Case("config.duplicate-table", VALID + VOLUME, ("is not valid TOML", "twice"), advice=("(at line",)),
    Case("config.secret-in-broken-file", f'api_key = "{CANARY}"\n' + VALID + "[volume\n",
         ("is not valid TOML",), advice=("(at line",)),
    Case("config.empty-file", "", ("must declare at least one endpoint",)),
    Case("config.endpoint-not-table",
         VOLUME + '[endpoints]\nimage = 3\ntraining = {id = "t"}\nspecial = {id = "s"}\n' + PRICES,
         ("[endpoints.image] must be a table",)),
    Case("config.endpoint-without-id", VOLUME + '[endpoints.image]\nname = "x"\n' + TRAINING + SPECIAL + PRICES,
         ("[endpoints.image] needs an id",)),
    Case("config.workers-string", with_image('workers_max = "3"'), ("[endpoints.image] workers_max", "whole number")),
    Case("config.workers-float", with_image("workers_max = 2.5"), ("[endpoints.image] workers_max", "whole number")),
    Case("config.workers-min-above-max", with_image("workers_min = 4", "workers_max = 2"),
         ("[endpoints.image]", "workers_min <= workers_max")),
    Case("config.scaling-type-unknown", with_image('scaling_type = "FAST"'),
         ("[endpoints.image] scaling_type must be one of",)),
    Case("config.pools-mixed", with_image('gpu_pools = ["ADA_24", 5]'), ("[endpoints.image] gpu_pools",)),
    Case("config.unknown-key", with_image("workers_mx = 3"),
         ("console.toml:5:", "unknown key 'workers_mx'", "did you mean 'workers_max'")),
    Case("config.unknown-role", VOLUME + '[endpoints.imgae]\nid = "img-1"\n',
         ("console.toml:3:", "unknown endpoint role 'imgae'", "did you mean 'image'")),
    Case("config.unknown-section", VALID + "[volumes]\nid = 'v'\n", ("unknown section 'volumes'", "'volume'")),
    Case("config.secret-in-file", f'[volume]\nid = "vol-1"\napi_key = "{CANARY}"\n' + IMAGE,
         ("console.toml:3:", "volume.api_key", "looks like a secret"), advice=("RUNPOD_API_KEY",)),
    Case("config.secret-in-env", with_image(f'env = {{ HF_TOKEN = "{CANARY}" }}'),
         ("console.toml:5:", "looks like a secret"), advice=('"secret:HF_TOKEN"',)),
    Case("config.volume-missing", IMAGE + TRAINING + SPECIAL + PRICES, ("[volume] needs an id",)),
    Case("config.volume-not-table", 'volume = "vol-1"\n' + IMAGE + TRAINING + SPECIAL + PRICES,
         ("[volume] needs an id",)),
    Case("config.volume-size-string", VOLUME + 'size_gb = "big"\n' + IMAGE + TRAINING + SPECIAL + PRICES,
         ("[volume] size_gb", "whole number")),
    Case("config.time-scale-zero", VALID + "[simulator]\ntime_scale = 0\n", ("[simulator] time_scale must be > 0",)),
]

FINDINGS = [
    Case("config.pools-not-list", with_image("gpu_pools = 5"), ("[endpoints.image] gpu_pools",)),
    Case("config.price-not-number", VOLUME + IMAGE + TRAINING + SPECIAL + '[prices.flex_per_s]\nADA_24 = "cheap"\n',
         ("[prices.flex_per_s] ADA_24",)),
    Case("config.prices-not-table", "prices = 3\n" + VOLUME + IMAGE + TRAINING + SPECIAL, ("[prices]",)),
    Case("config.time-scale-string", VALID + '[simulator]\ntime_scale = "fast"\n', ("[simulator] time_scale",)),
    Case("config.env-not-table", with_image("env = 5"), ("[endpoints.image.env] must be a table",)),
    Case("config.flashboot-string", with_image('flashboot = "no"'), ("[endpoints.image] flashboot",)),
]

WHERE = Path("/etc/console/console.toml")


def check(case: Case, canary, guidance) -> None:
    with pytest.raises(ConfigError) as raised:
        ConsoleConfig.parse(case.text, path=WHERE)
    message = str(raised.value)
    assert str(WHERE) in message, "the message names the file"
    for fragment in case.says:
        assert fragment in message, f"{fragment!r} missing from {message!r}"
    advice = case.advice or guidance
    assert any(a.lower() in message.lower() for a in advice), f"no advice in {message!r}"
    assert canary.find(message) == [] and canary.find(repr(raised.value)) == []


def test_the_base_text_is_valid():
    assert set(ConsoleConfig.parse(VALID).endpoints) == {"image", "training", "special"}


def test_a_team_without_some_roles_is_valid():
    config = ConsoleConfig.parse(VOLUME + IMAGE)
    assert set(config.endpoints) == {"image"} and not config.has("training")
    with pytest.raises(ConfigError, match=r"\[endpoints.training\]") as raised:
        config.endpoint("training")
    assert 'id = "<your training endpoint id' in raised.value.fix


def test_a_pool_without_any_price_is_a_warning_not_an_error():
    config = ConsoleConfig.parse(with_image('gpu_pools = ["H100_SXM"]'))
    assert config.unpriced_pools() == {"image": "H100_SXM"}
    assert config.price_per_second("image") == 0.0


def test_a_secret_reference_in_env_is_fine():
    config = ConsoleConfig.parse(with_image('env = { HF_TOKEN = "secret:HF_TOKEN", TOKENIZER_PARALLELISM = "false" }'))
    assert config.endpoint("image").env["HF_TOKEN"] == "secret:HF_TOKEN"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_config_gets_a_clear_config_error(case, canary, guidance):
    check(case, canary, guidance)


@pytest.mark.parametrize("case", FINDINGS, ids=[c.id for c in FINDINGS])
def test_wrong_type_is_a_config_error_not_a_crash_or_a_silent_guess(case, canary, guidance):
    """FINDING: these values crash with TypeError/ValueError/AttributeError (no file, no key in
    the message) or are silently misread ("no" for flashboot means on). See the report for the
    patch to lib/config.py."""
    check(case, canary, guidance)


def test_missing_file_says_how_to_point_at_one(tmp_path):
    with pytest.raises(ConfigError, match=r"not found \(set CONSOLE_CONFIG\)"):
        ConsoleConfig.load(tmp_path / "nope.toml")


def test_a_directory_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        ConsoleConfig.load(tmp_path)


def test_binary_file_is_a_config_error(tmp_path):
    """FINDING: a file that is not UTF-8 (a saved .xlsx, a UTF-16 export) raises
    UnicodeDecodeError instead of ConfigError naming the file."""
    path = tmp_path / "console.toml"
    path.write_bytes("[volume]\nid = 'vol'\n".encode("utf-16"))
    with pytest.raises(ConfigError, match="console.toml"):
        ConsoleConfig.load(path)


@pytest.mark.parametrize("access", ['operators = "ops@example.com"', "staff = [1, 2]", "access = 3"])
def test_bad_access_lists_are_config_errors(access, guidance):
    text = VALID + (f"{access}\n" if access.startswith("access") else f"[access]\n{access}\n")
    if access.startswith("access"):
        text = access + "\n" + VALID
    config = ConsoleConfig.parse(text)
    with pytest.raises(ConfigError) as raised:
        AccessPolicy.from_config(config.raw)
    message = str(raised.value)
    assert "[access]" in message and any(g in message.lower() for g in guidance)


def test_a_refused_config_leaves_the_job_history_alone(tmp_path):
    data = tmp_path / "data"
    store = JobStore(data)
    kept = store.create(role="image", endpoint_id="img-1", kind="test", user="a@example.com",
                        input={"prompt": "keep"}, idempotency_key="k1")
    store.close()
    before = hashlib.sha256((data / "console.sqlite").read_bytes()).hexdigest()
    bad = tmp_path / "console.toml"
    bad.write_text(CASES[0].text, encoding="utf-8")
    settings = Settings(api_key=Secret(CANARY), config_path=bad, data_dir=data)

    with pytest.raises(ConfigError):
        build_services(settings)

    assert hashlib.sha256((data / "console.sqlite").read_bytes()).hexdigest() == before
    reopened = JobStore(data)
    try:
        assert reopened.get(kept.local_id).input == {"prompt": "keep"}
    finally:
        reopened.close()


def test_every_config_case_is_documented(documented_cases):
    ids = [c.id for c in CASES + FINDINGS] + ["config.file-missing", "config.file-is-directory",
                                              "config.not-utf8", "config.access-not-list"]
    missing = sorted(i for i in ids if i not in documented_cases)
    assert missing == [], f"add these cases to docs/robustness.md: {missing}"
