#!/usr/bin/env python3
"""Validates kiosk-form bodies (the production-status object the agent sends
upstream) against a JSON Schema derived here, mechanically, from the seed's
field list (`kiosk-card-production-status.md`, default
../shared/reference/seeds/ from the repo root; or `--seed PATH`), with the
`jsonschema` library (PyPI), which we did not write.

What is read from the seed, and nothing else:

* `status`: its `Enum:` line;
* `kioskId`: (string,null), null "when the status is READY";
* `occurredAt`: (string), ISO 8601;
* `errorCode`: (string,null); the codes listed under "Request errors -
  Returned when status is REQUEST_ERROR" are those of REQUEST_ERROR, those
  under "Production errors - Returned when status is PRODUCTION_ERROR" those
  of PRODUCTION_ERROR; no code is listed for any other status, so it is null
  there ("Code returned when card production is not successful");
* `description`: (string,null), the code's description: a string exactly
  when there is a code.

The agent adds four ids of its own (eventId, sequence, cardToken,
profileId: docs/EVENT-FORMS.md); they are allowed and typed, and no other
key is.

Reads one kiosk-form object per line on stdin. With `--schema`, prints the
derived schema and exits. Prints a summary line (statuses and codes read) and
exits 0 when every body is valid; 1 naming the first invalid one; 2 on
unusable input or a seed that does not parse.
"""

import json
import pathlib
import re
import sys

from jsonschema import Draft202012Validator, FormatChecker

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_SEED = ROOT.parent / "shared" / "reference" / "seeds" / "kiosk-card-production-status.md"
CODE = re.compile(r"- ([A-Z][A-Z0-9_]+) - ")
IDS = {
    "eventId": {"type": "string", "minLength": 1},
    "sequence": {"type": "integer", "minimum": 1},
    "cardToken": {"type": "string", "minLength": 1},
    "profileId": {"type": "integer"},
}


def between(text: str, start: str, end: str) -> str:
    i = text.index(start) + len(start)
    return text[i : text.index(end, i)]


def derive(seed: str) -> dict:
    statuses = re.findall(r'"([A-Z_]+)"', between(seed, "Enum:", "- `kioskId`"))
    field = between(seed, "- `errorCode`", "- `description`")
    request = CODE.findall(
        between(field, "Returned when status is REQUEST_ERROR:", "Production errors")
    )
    production = CODE.findall(
        between(field, "Returned when status is PRODUCTION_ERROR:", "Example:")
    )
    for name, found in (("status", statuses), ("request codes", request), ("production codes", production)):
        if not found:
            raise ValueError(f"no {name} found in the seed")
    for s in ("REQUEST_ERROR", "PRODUCTION_ERROR", "READY"):
        if s not in statuses:
            raise ValueError(f"the seed's status enum has no {s}: {statuses}")
    if "(string,null)" not in between(seed, "- `kioskId`", "- `occurredAt`"):
        raise ValueError("kioskId is no longer (string,null) in the seed")
    if "When the status is READY, this value is null" not in seed:
        raise ValueError("the seed no longer says kioskId is null while READY")
    by_status = {"REQUEST_ERROR": request, "PRODUCTION_ERROR": production}
    rules = [
        {
            "if": {"properties": {"status": {"const": "READY"}}},
            "then": {"properties": {"kioskId": {"type": "null"}}},
            "else": {"properties": {"kioskId": {"type": "string", "minLength": 1}}},
        }
    ]
    for s in statuses:
        codes = by_status.get(s)
        then = (
            {"errorCode": {"enum": codes}, "description": {"type": "string", "minLength": 1}}
            if codes
            else {"errorCode": {"type": "null"}, "description": {"type": "null"}}
        )
        rules.append({"if": {"properties": {"status": {"const": s}}}, "then": {"properties": then}})
    seed_keys = {
        "status": {"enum": statuses},
        "kioskId": {"type": ["string", "null"]},
        "occurredAt": {"type": "string", "format": "date-time"},
        "errorCode": {"type": ["string", "null"]},
        "description": {"type": ["string", "null"]},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Kiosk card production status, derived from the seed's field list",
        "type": "object",
        "additionalProperties": False,
        "required": list(seed_keys) + list(IDS),
        "properties": {**seed_keys, **IDS},
        "allOf": rules,
        "x-read": {"statuses": statuses, "requestCodes": len(request), "productionCodes": len(production)},
    }


def main() -> int:
    args = sys.argv[1:]
    seed_path = DEFAULT_SEED
    if "--seed" in args:
        seed_path = pathlib.Path(args[args.index("--seed") + 1])
    try:
        schema = derive(seed_path.read_text())
    except (OSError, ValueError) as e:
        print(f"validate_kiosk_form: the seed {seed_path} is unusable: {e}", file=sys.stderr)
        return 2
    Draft202012Validator.check_schema(schema)
    if "--schema" in args:
        print(json.dumps(schema, indent=2))
        return 0
    v = Draft202012Validator(schema, format_checker=FormatChecker())
    checked = 0
    for n, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            body = json.loads(line)
        except ValueError as e:
            print(f"validate_kiosk_form: line {n}: not JSON: {e}", file=sys.stderr)
            return 2
        errs = [
            f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
            for e in sorted(v.iter_errors(body), key=lambda e: list(e.absolute_path))
        ]
        if errs:
            print(f"validate_kiosk_form: line {n} is invalid: {body}\n  " + "\n  ".join(errs))
            return 1
        checked += 1
    read = schema["x-read"]
    print(
        f"validate_kiosk_form: {checked} bodies valid against the seed "
        f"({len(read['statuses'])} statuses, {read['requestCodes']} request codes, "
        f"{read['productionCodes']} production codes)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
