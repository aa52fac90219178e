"""PyPI `http-message-signatures` (pinned in requirements.txt) as an independent RFC 9421
verifier for botauth's interop tests (`cargo xtask test`, xtask/src/interop.rs).

    python hms_verify.py REQUEST_FILE PUBLIC_JWK_FILE

Verifies the signature tagged `web-bot-auth` with HTTPMessageVerifier, ED25519 and a key
resolver that knows one key under its RFC 7638 thumbprint (the Web Bot Auth keyid). The
library's clock is the wall clock. Prints one JSON line {"ok": bool, "error": "..."};
exit 0 verified, 1 rejected, 2 bad input.

Raw request files: `METHOD TARGET HTTP/1.1`, `Name: value` lines, a blank line, a body;
CRLF or LF. The authority comes from Host, the scheme is https.
"""

import base64
import hashlib
import json
import sys

from cryptography.hazmat.primitives.asymmetric import ed25519
from http_message_signatures import HTTPMessageVerifier, HTTPSignatureKeyResolver, algorithms
from http_message_signatures.exceptions import HTTPMessageSignaturesException


class Headers:
    """Field lines in order; `items()` yields every line (what the library reads)."""

    def __init__(self, lines):
        self.lines = lines

    def items(self):
        return list(self.lines)


class Request:
    def __init__(self, method, url, headers):
        self.method = method
        self.url = url
        self.headers = Headers(headers)


def parse_raw(data):
    text = data.decode("latin-1")
    head, _, _body = text.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    method, target, _version = lines[0].split(" ")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name:
            raise ValueError(f"bad header line: {line!r}")
        headers.append((name, value.strip(" \t")))
    hosts = [v for n, v in headers if n.lower() == "host"]
    if not hosts:
        raise ValueError("request has no Host header")
    return Request(method, f"https://{hosts[0]}{target}", headers)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ThumbprintResolver(HTTPSignatureKeyResolver):
    def __init__(self, jwk):
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            raise ValueError("expected an OKP Ed25519 JWK")
        # RFC 7638 §3.2: required members in lexicographic order, no whitespace.
        canonical = json.dumps({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}, separators=(",", ":"))
        self.keyid = b64url(hashlib.sha256(canonical.encode()).digest())
        raw = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
        self.key = ed25519.Ed25519PublicKey.from_public_bytes(raw)

    def resolve_public_key(self, key_id):
        return self.key if key_id == self.keyid else None


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(argv[1], "rb") as f:
            request = parse_raw(f.read())
        with open(argv[2], "rb") as f:
            resolver = ThumbprintResolver(json.load(f))
    except (OSError, ValueError, KeyError) as e:
        print(f"hms_verify.py: {e}", file=sys.stderr)
        return 2
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=resolver)
    try:
        results = verifier.verify(request, expect_tag="web-bot-auth")
    except HTTPMessageSignaturesException as e:
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
        return 1
    print(json.dumps({"ok": True, "labels": [r.label for r in results]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
