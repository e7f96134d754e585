"""Passwords are masked where they stand as passwords, and nothing else is touched."""

import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptor_harness.config import check_dsn, parse_scenario
from ptor_harness.errors import ConfigError
from ptor_harness.redact import MASK, dsn_secrets, redact


def test_keyword_and_uri_passwords_are_masked():
    text = ("host=a password=s3cret port=5 | password='two words' | "
            "postgresql://bob:pa55@h:5/db?sslmode=require&password=q1 | sslpassword=k3y")
    out = redact(text)
    for secret in ("s3cret", "two words", "pa55", "q1", "k3y"):
        assert secret not in out
    assert out.count(MASK) == 5


def test_a_password_is_masked_only_where_it_stands_as_one():
    """With password=ptor, nothing else called ptor may change (it used to: the schema,
    the report folder and the run ids were masked too)."""
    text = "host=x password=ptor schema = ptor report-dir = ptor-runs run 1 ptor"
    assert redact(text, ("ptor",)) == \
        f"host=x password={MASK} schema = ptor report-dir = ptor-runs run 1 ptor"
    assert redact("20261126T083006Z-1a2b3c", ("1",)) == "20261126T083006Z-1a2b3c"
    assert redact("PGPASSWORD=hunter2 psql", ()) == f"PGPASSWORD={MASK} psql"
    assert redact("psql 'hunter2'", ("hunter2",)) == f"psql '{MASK}'"


@pytest.mark.parametrize("dsn, secret", [
    ("host=x password=Head TailSecret", "TailSecret"),
    ("postgresql://u:S3cr%zzPW@host/db", "S3cr%zzPW"),
    ("host=x password='Unended S3cretWord", "S3cretWord"),
    ("host=x pasword=Typo7", "Typo7"),
])
def test_an_unparsable_dsn_is_named_never_quoted(dsn, secret):
    with pytest.raises(ConfigError) as err:
        check_dsn("primary-pgdsn", dsn)
    message = str(err.value)
    assert message.startswith("primary-pgdsn is not a valid libpq connection string: ")
    for word in (secret, *secret.split()):
        assert word not in message
    assert "\n" not in message


def test_dsn_secrets():
    assert dsn_secrets("host=x password=abc") == ("abc",)
    assert dsn_secrets("host=x password=abc sslpassword=def") == ("abc", "def")
    assert dsn_secrets("host=x") == ()
    assert dsn_secrets("not a dsn port") == ()


# a distinctive start, so no other value contains the password by chance
PASSWORDS = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=3,
                    max_size=24).map(lambda p: "Zq9" + p).filter(lambda p: p.strip() == p)


def keyword_dsn(password: str, key: str) -> str:
    quoted = "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"host=127.0.0.1 port=5432 dbname=app user=u {key}={quoted} application_name=x"


def uri_dsn(password: str, where: str) -> str:
    encoded = urllib.parse.quote(password, safe="")
    if where == "userinfo":
        return f"postgresql://u:{encoded}@127.0.0.1:5432/app?application_name=x"
    return f"postgresql://u@127.0.0.1:5432/app?{where}={encoded}&application_name=x"


@settings(max_examples=300, derandomize=True, deadline=None)
@given(password=PASSWORDS, form=st.sampled_from(["password", "sslpassword", "userinfo",
                                                  "query-password"]))
def test_every_valid_dsn_form_keeps_its_password_out_and_the_rest_in(password, form):
    """The scenario as reports store it: the password is gone, every other value is as
    given (a unique marker in a neighbouring option survives untouched)."""
    dsn = keyword_dsn(password, form) if form in ("password", "sslpassword") else \
        uri_dsn(password, "userinfo" if form == "userinfo" else "password")
    scenario = parse_scenario(["--primary-pgdsn", dsn, "--schema", "marker_schema",
                               "--failover-command", "echo marker-command"], {})
    public = scenario.as_public_dict()
    text = repr(public)
    assert password not in text
    if form in ("userinfo", "query-password"):
        assert urllib.parse.quote(password, safe="") not in text
    assert public["schema"] == "marker_schema"
    assert public["failover_command"] == "echo marker-command"
    assert MASK in public["primary_pgdsn"]


@settings(max_examples=300, derandomize=True, deadline=None)
@given(password=PASSWORDS, noise=st.sampled_from(["", " ", "'", "@", "/", "#", "=", "%zz"]),
       form=st.sampled_from(["keyword", "unquoted", "uri"]))
def test_a_broken_dsn_never_shows_its_password(password, noise, form):
    if form == "keyword":
        dsn = f"host=x password='{password}{noise}"  # unterminated
    elif form == "unquoted":
        dsn = f"host=x password={password}{noise} port"
    else:
        dsn = f"postgresql://u:{password}{noise}@h:5432/db"
    try:
        check_dsn("primary-pgdsn", dsn)
    except ConfigError as exc:
        message = str(exc)
        assert password not in message
        assert all(len(word) < 4 or word not in message for word in password.split()
                   if word.startswith("Zq9"))
    else:  # libpq could parse it after all: then masking takes it out of every output
        assert password not in redact(dsn, dsn_secrets(dsn))
