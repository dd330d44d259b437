//! The local API's OpenAPI document (docs/local-api.openapi.yaml) itself:
//! valid OpenAPI 3.0 by openapi-spec-validator (PyPI), with a broken copy
//! refused as a negative control; the agent serves it byte for byte; its
//! lists of codes are the agent's (`ApiCode`, `ErrorCode`); and it has
//! every route the router has, no more. Whether the answers keep to it is
//! tests/api_openapi.rs and tests/api_schemathesis.rs.

// Only the venv part of the tests' common harness: this test needs no
// simulator, so it runs in builds without the `simulator` feature too.
#[allow(dead_code)]
#[path = "common/python.rs"]
mod python;

use satellite::api::error::ApiCode;
use satellite::codes::ErrorCode;
use std::collections::BTreeSet;

const DOC: &str = "docs/local-api.openapi.yaml";

fn document() -> String {
    std::fs::read_to_string(python::repo().join(DOC)).unwrap()
}

/// The `- ITEM` lines of the `enum:` list under `components.schemas.NAME`.
fn enum_of(doc: &str, name: &str) -> BTreeSet<String> {
    let start = doc
        .find(&format!("\n    {name}:\n"))
        .unwrap_or_else(|| panic!("no schema {name} in {DOC}"));
    let rest = &doc[start..];
    let list = &rest[rest.find("enum:\n").expect("an enum list") + "enum:\n".len()..];
    list.lines()
        .map_while(|l| l.trim_start().strip_prefix("- "))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_documents_code_lists_are_the_agents() {
    let doc = document();
    let api: BTreeSet<String> = ApiCode::ALL.iter().map(|c| c.as_str().into()).collect();
    assert_eq!(enum_of(&doc, "ApiErrorCode"), api);
    let all: BTreeSet<String> = ErrorCode::ALL.iter().map(|c| c.as_str().into()).collect();
    assert_eq!(enum_of(&doc, "ErrorCode"), all);
    assert_eq!(satellite::api::openapi::DOCUMENT, doc, "the built-in copy");
}

/// "METHOD /path/{}" for each route `src/api/mod.rs` and
/// `src/api/technician.rs` give the router (parameter names left out: the
/// router's and the document's differ).
fn router_routes() -> BTreeSet<String> {
    let src = ["src/api/mod.rs", "src/api/technician.rs"]
        .iter()
        .map(|f| std::fs::read_to_string(python::repo().join(f)).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    for line in src
        .lines()
        .filter(|l| l.trim_start().starts_with(".route(\""))
    {
        let path = line.split('"').nth(1).unwrap();
        let rest = &line[line.find(path).unwrap() + path.len()..];
        for m in ["get", "post", "put", "delete", "patch"] {
            if rest.contains(&format!("{m}(")) {
                out.insert(format!("{} {}", m.to_uppercase(), unnamed(path)));
            }
        }
    }
    out
}

/// The same, from the document's `paths`.
fn documented_routes(doc: &str) -> BTreeSet<String> {
    let paths = &doc[doc.find("\npaths:\n").unwrap()..doc.find("\ncomponents:\n").unwrap()];
    let mut out = BTreeSet::new();
    let mut current = "";
    for line in paths.lines() {
        if let Some(p) = line.strip_prefix("  /").and_then(|p| p.strip_suffix(':')) {
            current = p;
        } else if let Some(m) = line.strip_prefix("    ").and_then(|m| m.strip_suffix(':')) {
            if ["get", "post", "put", "delete", "patch"].contains(&m) {
                out.insert(format!(
                    "{} {}",
                    m.to_uppercase(),
                    unnamed(&format!("/{current}"))
                ));
            }
        }
    }
    out
}

fn unnamed(path: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in path.chars() {
        match c {
            '{' => {
                inside = true;
                out.push_str("{}");
            }
            '}' => inside = false,
            c if !inside => out.push(c),
            _ => {}
        }
    }
    out
}

#[test]
fn every_route_of_the_router_is_in_the_document_and_no_other() {
    let routes = router_routes();
    assert!(routes.len() >= 13, "the routes were read: {routes:?}");
    assert_eq!(
        routes,
        documented_routes(&document()),
        "a route added to src/api/mod.rs goes in {DOC} too, with every answer it gives \
         (GET /metrics: a `text/plain` answer with schema `type: string`, and the errors \
         every operation has: 400, 401, 408, 413, 500)"
    );
}

#[test]
fn the_document_is_valid_openapi_and_a_broken_one_is_not() {
    let bin = python::venv_bin();
    let check = |path: &std::path::Path| {
        std::process::Command::new(bin.join("openapi-spec-validator"))
            .arg(path)
            .output()
            .unwrap()
    };
    let out = check(&python::repo().join(DOC));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(": OK"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Negative control: a response that refers to a schema that is not there.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    let doc = document().replacen(
        "$ref: '#/components/schemas/CardView'",
        "$ref: '#/components/schemas/NoSuchView'",
        1,
    );
    assert_ne!(doc, document());
    std::fs::write(&broken, doc).unwrap();
    let out = check(&broken);
    assert!(
        !out.status.success(),
        "the validator passed a broken document"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("NoSuchView"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
