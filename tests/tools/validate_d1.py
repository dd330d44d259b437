#!/usr/bin/env python3
"""Validates D1 Track Card request bodies against the vendor's OpenAPI
document, with openapi-schema-validator (PyPI), which we did not write.

Reads one JSON body per line on stdin. The schema is the requestBody of
`POST /issuers/{issuerId}/physicalCards/{cardId}/track` (application/json)
in the D1 document (default: ../shared/reference/d1-track-card.openapi.json
from the repo root; or the first argument), with its $refs resolved in the
document. It is checked twice:

* by OAS30Validator, which honours the document's `discriminator`
  (trackingType picks the one schema to apply, through its `mapping`);
* by a plain JSON Schema draft 4 validator, which ignores the discriminator
  and applies `oneOf` as written (exactly one branch must match).

Only the request body schema is used: the document as shipped does not
declare its path parameters (issuerId, cardId), so openapi-spec-validator
refuses the document as a whole (scripts/check-openapi.sh reports it); that
does not touch the body schema.

Exit status 0 when every body is valid; 1 naming the first invalid one;
2 on unusable input.
"""

import json
import pathlib
import sys

from jsonschema import Draft4Validator
from openapi_schema_validator import OAS30Validator
from openapi_schema_validator.validators import check_openapi_schema

PATH = "/issuers/{issuerId}/physicalCards/{cardId}/track"
ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_DOC = ROOT.parent / "shared" / "reference" / "d1-track-card.openapi.json"


def body_schema(doc: dict) -> dict:
    """The request body schema, as a root schema whose local $refs
    (`#/components/...`, also those of the discriminator's mapping) resolve
    in the document's components."""
    schema = doc["paths"][PATH]["post"]["requestBody"]["content"]["application/json"]["schema"]
    if set(schema) != {"$ref"}:
        raise ValueError(f"expected a bare $ref as the request body schema, got {schema}")
    return {"allOf": [schema], "components": doc["components"]}


def main() -> int:
    doc_path = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DOC
    try:
        doc = json.loads(doc_path.read_text())
        schema = body_schema(doc)
    except (OSError, ValueError, KeyError) as e:
        print(f"validate_d1: cannot read the request body schema of {doc_path}: {e!r}", file=sys.stderr)
        return 2
    # The component schemas themselves are valid OAS 3.0 schemas.
    for name, s in doc["components"]["schemas"].items():
        check_openapi_schema(OAS30Validator, s)
    validators = {
        "OAS30Validator (discriminator)": OAS30Validator(schema),
        "Draft4Validator (plain oneOf)": Draft4Validator(schema),
    }
    checked = 0
    for n, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            body = json.loads(line)
        except ValueError as e:
            print(f"validate_d1: line {n}: not JSON: {e}", file=sys.stderr)
            return 2
        failed = []
        for what, v in validators.items():
            errors = sorted(v.iter_errors(body), key=lambda e: list(e.absolute_path))
            if errors:
                detail = "; ".join(
                    f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
                    + "".join(f" [{c.message}]" for c in e.context)
                    for e in errors
                )
                failed.append(f"{what}: {detail}")
        if failed:
            print(f"validate_d1: line {n}: {json.dumps(body)} is invalid. " + " | ".join(failed), file=sys.stderr)
            return 1
        checked += 1
    if checked == 0:
        print("validate_d1: no body on stdin", file=sys.stderr)
        return 2
    print(f"validate_d1: {checked} bodies valid against {doc_path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
