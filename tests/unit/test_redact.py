from ptor_harness.redact import MASK, dsn_secrets, redact


def test_keyword_and_uri_passwords_are_masked():
    text = ("host=a password=s3cret port=5 | password='two words' | "
            "postgresql://bob:pa55@h:5/db?sslmode=require&password=q1")
    out = redact(text)
    for secret in ("s3cret", "two words", "pa55", "q1"):
        assert secret not in out
    assert out.count(MASK) == 4


def test_explicit_secrets_are_masked_anywhere():
    assert redact("FATAL: password authentication failed for hunter2", ("hunter2",)) == \
        f"FATAL: password authentication failed for {MASK}"


def test_dsn_secrets():
    assert dsn_secrets("host=x password=abc") == ("abc",)
    assert dsn_secrets("host=x") == ()
    assert dsn_secrets("not a dsn port") == ()
