#!/usr/bin/env python3
"""Validates the status changes sent upstream against our JSON Schemas
(tests/schemas/), with the `jsonschema` library (PyPI), which we did not
write.

Reads JSON lines on stdin. By default each line is one envelope of the
central base's events endpoint, exactly `{"production": ProductionStatus,
"operation": D1Operation}`; with `--webhook`, each line is an issuer
webhook body `{"type", "timestamp", "data"}` whose data is one form or the
other (a D1Operation has an `operationId`).

Exit status 0 when all are valid; 1 naming the first invalid one; 2 on
unusable input.
"""

import json
import pathlib
import sys

from jsonschema import Draft202012Validator, FormatChecker

SCHEMAS = pathlib.Path(__file__).resolve().parents[1] / "schemas"
WEBHOOK_TYPE = "card.production.status_changed"


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def problems(v: Draft202012Validator, instance, where: str) -> list:
    return [
        f"{where}/{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in sorted(v.iter_errors(instance), key=lambda e: list(e.absolute_path))
    ]


def main() -> int:
    webhook = "--webhook" in sys.argv[1:]
    production = validator("production-status.schema.json")
    operation = validator("d1-operation.schema.json")
    checked = 0
    for n, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as e:
            print(f"validate_events: line {n}: not JSON: {e}", file=sys.stderr)
            return 2
        if not isinstance(item, dict):
            errs = ["(line): not an object"]
        elif webhook:
            errs = []
            if set(item) != {"type", "timestamp", "data"}:
                errs.append(f"(body): keys {sorted(item)}, expected type, timestamp, data")
            if item.get("type") != WEBHOOK_TYPE:
                errs.append(f"type: {item.get('type')!r}, expected {WEBHOOK_TYPE!r}")
            data = item.get("data")
            if isinstance(data, dict) and "operationId" in data:
                errs += problems(operation, data, "data")
            else:
                errs += problems(production, data, "data")
                if isinstance(data, dict) and item.get("timestamp") != data.get("occurredAt"):
                    errs.append("timestamp: differs from data.occurredAt")
        else:
            errs = []
            if set(item) != {"production", "operation"}:
                errs.append(f"(envelope): keys {sorted(item)}, expected production, operation")
            errs += problems(production, item.get("production"), "production")
            errs += problems(operation, item.get("operation"), "operation")
        if errs:
            print(f"validate_events: line {n}: {line.strip()} is invalid: " + "; ".join(errs), file=sys.stderr)
            return 1
        checked += 1
    if checked == 0:
        print("validate_events: nothing on stdin", file=sys.stderr)
        return 2
    print(f"validate_events: {checked} {'webhook bodies' if webhook else 'envelopes'} valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
