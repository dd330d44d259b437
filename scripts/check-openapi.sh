#!/usr/bin/env bash
# Validates the OpenAPI documents with openapi-spec-validator (PyPI), from
# the tests' venv under target/ (scripts/pyenv.sh, pinned in
# scripts/python-requirements.txt) so the system Python stays untouched.
# Usage: scripts/check-openapi.sh   (from anywhere; paths are from the repo root)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/pyenv.sh
venv="target/pyvenv"
# Ours must pass.
# (issuer-webhook refers to central-base's event forms by relative $ref.)
"$venv/bin/openapi-spec-validator" docs/central-base.openapi.yaml docs/issuer-webhook.openapi.yaml \
    docs/local-api.openapi.yaml
# The vendor's D1 reference document, when the shared folder sits beside the
# repo. Its errors are reported but do not fail the check: it is not ours to
# fix, and as shipped it does not declare the path parameters of its one
# path (issuerId, cardId), which the validator rightly refuses. Set
# STRICT_REFERENCE=1 to fail on it too.
ref=../shared/reference/d1-track-card.openapi.json
if [ -f "$ref" ]; then
    if ! "$venv/bin/openapi-spec-validator" "$ref"; then
        echo "warning: $ref does not validate (vendor document, see above)" >&2
        if [ "${STRICT_REFERENCE:-0}" = 1 ]; then
            exit 1
        fi
    fi
fi
