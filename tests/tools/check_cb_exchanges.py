#!/usr/bin/env python3
"""Checks exchanges between the agent and a central base against
docs/central-base.openapi.yaml with openapi-core (PyPI), which we did not
write: each request (server URL, path, method, query, headers, security,
body) with the request validator, and its answer (status, headers, body)
with the response validator.

Reads JSON lines on stdin, one exchange each:
  {"url": full URL with its query, "method", "headers": [[name, value]...],
   "body": the request body as JSON (a form as an object of its fields;
   text as a string; null when empty), "status": answer status,
   "responseHeaders": [[name, value]...], "responseBody": answer body text}
Answers with a status the document does not list for the operation are
reported apart (`--strict-responses` makes them errors); a request is always
checked.

Prints one line per invalid exchange, then
  {"operations": {operationId: requests checked}}
and exits 0 when every request (and every checked answer) is valid; 1 when
one is not; 2 on unusable input.
"""

import json
import pathlib
import re
import sys
from urllib.parse import parse_qsl, urlencode, urlsplit

import yaml
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "central-base.openapi.yaml"
METHODS = ("get", "put", "post", "delete", "patch")


def reasons(e: BaseException) -> list:
    """An openapi-core error and the schema errors along its causes."""
    out = [f"{type(e).__name__}: {e}"]
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        for se in getattr(e, "schema_errors", None) or []:
            out.append(f"{'/'.join(map(str, se.absolute_path)) or '(body)'}: {se.message}")
        e = e.__cause__ or e.__context__
    return out


def operation_of(spec: dict, path: str, method: str):
    """The operationId whose path template ends the request's path."""
    for t, item in spec["paths"].items():
        rx = "^(.*)" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(t)) + "$"
        if re.match(rx, path) and method.lower() in item:
            op = item[method.lower()]
            return op["operationId"], op
    return None, None


def body_text(body, ctype) -> str:
    """The request body as sent, from its JSON view."""
    if body is None:
        return ""
    if ctype == "application/x-www-form-urlencoded" and isinstance(body, dict):
        return urlencode(body)
    if isinstance(body, str) and ctype != "application/json":
        return body
    return json.dumps(body)


def main() -> int:
    strict = "--strict-responses" in sys.argv[1:]
    spec = yaml.safe_load(DOC.read_text())
    api = OpenAPI.from_dict(spec)
    counts = {}
    bad = 0
    for n, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            ex = json.loads(line)
            url = urlsplit(ex["url"])
            method = ex["method"]
            headers = {k.lower(): v for k, v in ex["headers"]}
            rheaders = {k.lower(): v for k, v in ex["responseHeaders"]}
            status = int(ex["status"])
        except (ValueError, KeyError, TypeError) as e:
            print(f"check_cb_exchanges: line {n}: unusable: {e}", file=sys.stderr)
            return 2
        op_id, op = operation_of(spec, url.path, method)
        what = f"{method} {url.path}{'?' + url.query if url.query else ''} -> {status}"
        if op_id is None:
            bad += 1
            print(f"{what}: no operation of the document")
            continue
        counts[op_id] = counts.get(op_id, 0) + 1
        ctype = headers.get("content-type", "").split(";")[0].strip() or None
        text = body_text(ex["body"], ctype)
        request = MockRequest(
            f"{url.scheme}://{url.netloc}",
            method.lower(),
            url.path,
            args=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers=headers,
            data=text.encode() if text else None,
            content_type=ctype,
        )
        # openapi-core takes the server from the URL: the document's
        # `servers` must resolve the configured base (and the token URL).
        try:
            api.validate_request(request)
        except Exception as e:
            bad += 1
            print(f"{what}: the REQUEST is outside the document: " + "; ".join(reasons(e)))
            print(f"  body: {text[:400]!r}")
            continue
        if str(status) not in op["responses"]:
            if strict:
                bad += 1
            print(f"{what}: the answer's status is not documented for {op_id}")
            continue
        rctype = rheaders.get("content-type", "").split(";")[0].strip() or None
        response = MockResponse(
            ex["responseBody"].encode(), status_code=status, headers=rheaders, content_type=rctype
        )
        try:
            api.validate_response(request, response)
        except Exception as e:
            bad += 1
            print(f"{what}: the ANSWER is outside the document: " + "; ".join(reasons(e)))
            # Card data is not printed, even a test's.
            if op_id != "getCardData":
                print(f"  body: {ex['responseBody'][:200]!r}")
    if not counts:
        print("check_cb_exchanges: nothing on stdin", file=sys.stderr)
        return 2
    print(json.dumps({"operations": counts}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
