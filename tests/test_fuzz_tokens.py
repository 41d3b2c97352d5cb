"""Join tokens and unlock keys (pki/tokens.py): a value or a ValueError saying what is wrong.

Random text, and text built from a token's or key's own parts (prefix,
version, base36 digits of every length, base64 with and without padding,
dashes, white space, unicode digits), goes through `tokens.parse`,
`same_secret`, `role_for_token` and `parse_unlock_key`. Each returns a value
or raises ValueError with a message that names the expected form (a token's
secret is never echoed back); never another exception. Round trips: a
generated token parses to its parts and prints back the same
(str(parse(t)) == t), and parse_unlock_key gives the 32 bytes a key was made
from. Examples: 300 per property (derandomized).
"""
from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from pki import tokens
from tests.fuzz_helpers import VALUES, fuzz_settings

FUZZ = fuzz_settings(300)
BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
DIGEST = st.text(alphabet=BASE36, min_size=50, max_size=50)
SECRET = st.text(alphabet=BASE36, min_size=25, max_size=25)
TOKEN_PARTS = st.lists(st.sampled_from(["SWMTKN", "-", "1", "2", "z" * 50, "0" * 50, "a" * 25,
                                        "A" * 25, "٣" * 25, " ", "\n", "SWMTKN-1-"]) | VALUES
                       | DIGEST | SECRET, max_size=6).map("".join)
WORKER = "SWMTKN-1-" + "0" * 49 + "1-" + "w" * 25
MANAGER = "SWMTKN-1-" + "0" * 49 + "1-" + "m" * 25


@FUZZ
@given(TOKEN_PARTS | VALUES)
def test_join_token_parses_or_is_refused(text: str) -> None:
    try:
        token = tokens.parse(text)
    except ValueError as exc:
        message = str(exc)
        assert message.startswith("invalid join token: ") and tokens.TOKEN_FORM in message
        parts = text.strip().split("-")
        if len(parts) == 4 and len(parts[3]) == tokens.SECRET_LEN:
            assert parts[3] not in message        # the secret is not echoed
        assert tokens.same_secret(text, WORKER) is False
        return
    assert len(token.digest) == tokens.DIGEST_LEN and len(token.secret) == tokens.SECRET_LEN
    assert str(token) == text.strip()
    assert tokens.role_for_token(text, WORKER, MANAGER) in (None, "worker", "manager")


@FUZZ
@given(st.integers(0, 2**256 - 1), st.integers(0, 2**128 - 1))
def test_join_token_round_trip(digest: int, secret: int) -> None:
    text = str(tokens.JoinToken(tokens.to_base36(digest, tokens.DIGEST_LEN),
                                tokens.to_base36(secret, tokens.SECRET_LEN)))
    parsed = tokens.parse(text)
    assert (int(parsed.digest, 36), int(parsed.secret, 36)) == (digest, secret)
    assert str(parsed) == text
    assert tokens.role_for_token(f" {text}\n", text, MANAGER) == "worker"


KEY_PARTS = st.lists(st.sampled_from(["SWMKEY", "-1-", "SWMKEY-1-", "A" * 43, "A" * 44, "=",
                                      "==", "+", "/", "-", "_", " ", "\n", "é"]) | VALUES
                     | st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
                     max_size=5).map("".join)


@FUZZ
@given(KEY_PARTS | VALUES)
def test_unlock_key_parses_or_is_refused(text: str) -> None:
    try:
        raw = tokens.parse_unlock_key(text)
    except ValueError as exc:
        assert str(exc).startswith("invalid unlock key: ") and tokens.UNLOCK_FORM in str(exc)
        return
    assert len(raw) == tokens.KEY_BYTES


@FUZZ
@given(st.binary(min_size=32, max_size=32), st.booleans())
def test_unlock_key_round_trip(raw: bytes, padded: bool) -> None:
    body = base64.b64encode(raw).decode()
    key = tokens.UNLOCK_PREFIX + (body if padded else body.rstrip("="))
    assert tokens.parse_unlock_key(key) == raw
    assert tokens.parse_unlock_key(f"  {key}\n") == raw
