#!/usr/bin/env python3
"""Checks answers of the local API against docs/local-api.openapi.yaml with
openapi-core (PyPI), which we did not write: each answer's status must be one
the operation documents, its media type and body must match that
response's schema, and its documented headers must be there.

Answers outside the document's paths are checked against the document's own
words for them: a path not listed is 404 with `NotFoundError`; a listed path
with another method is 405 with `MethodNotAllowedError` and an `Allow` header
naming exactly the path's methods (HEAD comes with GET).

Reads JSON lines on stdin, one exchange each:
  {"method", "path" (with its query), "status", "headers": [[name, value]...],
   "body" (text), "requestContentType" (or null)}

Prints one line per invalid answer. With `--coverage`, prints last a JSON
object {"seen": [...], "unseen": [...]}: the documented
"operationId status" pairs the exchanges gave, and those they did not.

Exit status 0 when every answer is valid; 1 when one is not; 2 on unusable
input.
"""

import json
import pathlib
import re
import sys
from urllib.parse import parse_qsl, urlsplit

import yaml
from openapi_core import Config, OpenAPI
from openapi_core.deserializing.media_types.util import plain_loads
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "local-api.openapi.yaml"
HOST = "http://localhost"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def template_regex(template: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


def component_check(spec: dict, schema_name: str, body) -> list:
    """Validates body against components/schemas/NAME of the document."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    v = OAS30Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}" for e in v.iter_errors(body)]


def outside(spec: dict, ex: dict, headers: dict, body) -> list:
    """An answer to a request the document has no operation for."""
    path = urlsplit(ex["path"]).path
    listed = [t for t in spec["paths"] if template_regex(t).match(path)]
    if not listed:
        if ex["status"] != 404:
            return [f"a path not in the document answered {ex['status']}, not 404"]
        return component_check(spec, "NotFoundError", body)
    methods = {m.upper() for t in listed for m in spec["paths"][t] if m in METHODS}
    if "GET" in methods:
        methods.add("HEAD")
    errs = []
    if ex["status"] != 405:
        errs.append(f"{ex['method']} is not a method of {listed[0]} but answered {ex['status']}, not 405")
    allow = headers.get("allow")
    if allow is None:
        errs.append("405 without an Allow header")
    else:
        given = {m.strip().upper() for m in allow.split(",") if m.strip()}
        if given != methods:
            errs.append(f"Allow: {allow!r}, the document has {sorted(methods)}")
    return errs + component_check(spec, "MethodNotAllowedError", body)


def reasons(e: BaseException) -> list:
    """An openapi-core error and the schema errors along its causes."""
    out = [f"{type(e).__name__}: {e}"]
    while e is not None:
        for se in getattr(e, "schema_errors", None) or []:
            out.append(f"{'/'.join(map(str, se.absolute_path)) or '(body)'}: {se.message}")
        e = e.__cause__ or e.__context__
    return out


def main() -> int:
    coverage = "--coverage" in sys.argv[1:]
    spec = yaml.safe_load(DOC.read_text())
    # openapi-core reads no YAML; the document's schema for its own YAML is
    # text, which openapi-core's text/plain reader gives.
    api = OpenAPI.from_dict(
        spec, config=Config(extra_media_type_deserializers={"application/yaml": plain_loads})
    )
    documented = {
        (t, m, s): op.get("operationId", f"{m} {t}")
        for t, item in spec["paths"].items()
        for m, op in item.items()
        if m in METHODS
        for s in op["responses"]
    }
    seen = set()
    bad = 0
    checked = 0
    for n, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            ex = json.loads(line)
            method, target, status = ex["method"], ex["path"], int(ex["status"])
            headers = {k.lower(): v for k, v in ex["headers"]}
            text = ex["body"]
        except (ValueError, KeyError, TypeError) as e:
            print(f"check_local_api: line {n}: unusable: {e}", file=sys.stderr)
            return 2
        checked += 1
        url = urlsplit(target)
        ctype = headers.get("content-type", "")
        try:
            body = json.loads(text) if ctype.startswith("application/json") and text else text
        except ValueError as e:
            print(f"{method} {target} -> {status}: the body says it is JSON but is not: {e}")
            bad += 1
            continue
        request = MockRequest(
            HOST,
            method,
            url.path,
            args=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers={},
            content_type=ex.get("requestContentType") or "application/json",
        )
        response = MockResponse(
            text.encode(), status_code=status, headers=headers, content_type=ctype.split(";")[0].strip() or None
        )
        errs = []
        try:
            api.validate_response(request, response)
        except (PathNotFound, OperationNotFound):
            errs = outside(spec, ex, headers, body)
        except Exception as e:  # openapi-core's validation errors: say what and why
            errs = reasons(e)
        for t, m, s in documented:
            if m == method.lower() and template_regex(t).match(url.path) and s == str(status):
                seen.add(documented[(t, m, s)] + " " + s)
        if errs:
            bad += 1
            print(f"{method} {target} -> {status} is outside the document: " + "; ".join(errs))
            print(f"  body: {text[:400]!r}")
    if checked == 0:
        print("check_local_api: nothing on stdin", file=sys.stderr)
        return 2
    print(f"check_local_api: {checked} answers checked, {bad} outside the document")
    if coverage:
        every = {f"{op} {s}" for (t, m, s), op in documented.items()}
        print(json.dumps({"seen": sorted(seen), "unseen": sorted(every - seen)}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
