//! Where printer model profiles (`hardware/*.toml`) are found, and how one
//! profile `extends` another. Shared by the agent and the simulator: each reads
//! the merged table for the fields it needs.
//!
//! A name with a `/` or ending in `.toml` is a file; anything else is an id,
//! looked up as `<dir>/<id>.toml` and then among the profiles embedded here. A
//! child merges over its parent: tables key by key, and the rule arrays by
//! their key (`word` for `[[reply]]`, `char` for `[[nack]]`, `name` for
//! `[[flag]]`), a child rule replacing the parent's.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// The profiles shipped in `hardware/`, by id.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "evolis-km500b",
        include_str!("../../hardware/evolis-km500b.toml"),
    ),
    (
        "evolis-km500b-older",
        include_str!("../../hardware/evolis-km500b-older.toml"),
    ),
    (
        "instant-embosser-ie4",
        include_str!("../../hardware/instant-embosser-ie4.toml"),
    ),
];

pub fn embedded_ids() -> impl Iterator<Item = &'static str> {
    EMBEDDED.iter().map(|(id, _)| *id)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("printer model {name:?} is unknown: no {name}.toml in {searched} and no embedded profile of that name (embedded: {embedded})")]
    Unknown {
        name: String,
        searched: String,
        embedded: String,
    },
    #[error("cannot read profile {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("profile {source_name}: {message}")]
    Invalid {
        source_name: String,
        message: String,
    },
}

/// A resolved profile: where it came from and its merged table.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub source: String,
    pub table: Table,
}

/// Finds a profile by id or path and resolves its `extends` chain.
pub fn resolve(name: &str, dir: Option<&Path>) -> Result<Resolved, ProfileError> {
    resolve_in(name, dir, &mut Vec::new())
}

/// Resolves a profile given as text (`extends` looks in `dir`, then embedded).
pub fn resolve_text(
    source: &str,
    text: &str,
    dir: Option<&Path>,
) -> Result<Resolved, ProfileError> {
    let table = parse_and_extend(source, text, dir, &mut vec![source.to_string()])?;
    Ok(Resolved {
        source: source.to_string(),
        table,
    })
}

fn resolve_in(
    name: &str,
    dir: Option<&Path>,
    chain: &mut Vec<String>,
) -> Result<Resolved, ProfileError> {
    if chain.iter().any(|c| c == name) {
        return Err(ProfileError::Invalid {
            source_name: name.to_string(),
            message: format!("`extends` loops: {} -> {name}", chain.join(" -> ")),
        });
    }
    chain.push(name.to_string());
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| ProfileError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    };
    let (source, text, dir) = if name.contains('/') || name.ends_with(".toml") {
        let path = PathBuf::from(name);
        // A file's parent is searched for what it extends, unless a directory is given.
        let dir = dir
            .map(Path::to_path_buf)
            .or_else(|| path.parent().map(Path::to_path_buf));
        (path.display().to_string(), read(&path)?, dir)
    } else if let Some(path) = dir
        .map(|d| d.join(format!("{name}.toml")))
        .filter(|p| p.is_file())
    {
        (
            path.display().to_string(),
            read(&path)?,
            dir.map(Path::to_path_buf),
        )
    } else if let Some((_, text)) = EMBEDDED.iter().find(|(id, _)| *id == name) {
        (
            format!("embedded:{name}"),
            text.to_string(),
            dir.map(Path::to_path_buf),
        )
    } else {
        return Err(ProfileError::Unknown {
            name: name.to_string(),
            searched: dir.map_or("no hardware directory".to_string(), |d| {
                d.display().to_string()
            }),
            embedded: embedded_ids().collect::<Vec<_>>().join(", "),
        });
    };
    let table = parse_and_extend(&source, &text, dir.as_deref(), chain)?;
    Ok(Resolved { source, table })
}

fn parse_and_extend(
    source: &str,
    text: &str,
    dir: Option<&Path>,
    chain: &mut Vec<String>,
) -> Result<Table, ProfileError> {
    let mut table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| ProfileError::Invalid {
            source_name: source.to_string(),
            message: e.to_string(),
        })?;
    let Some(parent) = table.remove("extends") else {
        return Ok(table);
    };
    let Some(parent) = parent.as_str().map(str::to_string) else {
        return Err(ProfileError::Invalid {
            source_name: source.to_string(),
            message: "`extends` must be a profile id".into(),
        });
    };
    let base = resolve_in(&parent, dir, chain)?;
    Ok(merge(base.table, table))
}

/// The key that identifies a rule in each rule array.
fn rule_key(array: &str) -> Option<&'static str> {
    match array {
        "reply" => Some("word"),
        "nack" => Some("char"),
        "flag" => Some("name"),
        _ => None,
    }
}

fn merge(mut base: Table, child: Table) -> Table {
    for (k, v) in child {
        let merged = match (base.remove(&k), v, rule_key(&k)) {
            (Some(Value::Table(b)), Value::Table(c), _) => Value::Table(merge(b, c)),
            (Some(Value::Array(parent)), Value::Array(child), Some(key)) => {
                let id = |r: &Value| r.get(key).and_then(Value::as_str).map(str::to_string);
                let replaced: BTreeSet<String> = child.iter().filter_map(id).collect();
                let mut out: Vec<Value> = parent
                    .into_iter()
                    .filter(|r| id(r).is_none_or(|x| !replaced.contains(&x)))
                    .collect();
                out.extend(child);
                Value::Array(out)
            }
            (_, v, _) => v,
        };
        base.insert(k, merged);
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embosser_extends_the_kiosk_printer() {
        let r = resolve("instant-embosser-ie4", None).unwrap();
        assert_eq!(r.source, "embedded:instant-embosser-ie4");
        let caps = r.table["capabilities"].as_table().unwrap();
        assert_eq!(caps["feeders"].as_integer(), Some(4));
        assert_eq!(caps["magnetic"].as_bool(), Some(true), "inherited");
        let words: Vec<&str> = r.table["reply"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x["word"].as_str())
            .collect();
        assert!(words.contains(&"COVER OPEN") && words.contains(&"ERROR EMBOSS"));
        assert!(!r.table.contains_key("extends"));
    }

    #[test]
    fn a_child_rule_replaces_the_parents() {
        let r = resolve_text("child", "extends = \"evolis-km500b\"\n[[reply]]\nword = \"COVER OPEN\"\ncode = \"PRT_PAUSED\"\nreason = \"x\"\n", None).unwrap();
        let covers: Vec<_> = r.table["reply"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["word"].as_str() == Some("COVER OPEN"))
            .collect();
        assert_eq!(covers.len(), 1);
        assert_eq!(covers[0]["code"].as_str(), Some("PRT_PAUSED"));
    }

    #[test]
    fn files_extend_their_neighbours_and_loops_are_caught() {
        let dir = std::env::temp_dir().join(format!("profiles-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.toml"), "extends = \"b\"\n[model]\nid = \"a\"\n").unwrap();
        std::fs::write(dir.join("b.toml"), "extends = \"a\"\n").unwrap();
        let e = resolve(dir.join("a.toml").to_str().unwrap(), None).unwrap_err();
        assert!(e.to_string().contains("loops"), "{e}");
        let e = resolve("no-such-model", Some(&dir)).unwrap_err();
        assert!(matches!(e, ProfileError::Unknown { .. }), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
