//! The size bounds the central-base document promises for the heartbeat
//! (free-text strings at most 1024 characters, lists at most 64 items, maps
//! at most 64 keys, the whole body at most 256 KiB), applied to the body
//! before it is sent, so that a long printer message or a growing map never
//! makes a heartbeat the central base must refuse.

use serde_json::Value;

pub const MAX_STRING: usize = 1024;
pub const MAX_ITEMS: usize = 64;
pub const MAX_BODY: usize = 256 * 1024;

/// Cuts `v` to the bounds, in place: a longer string keeps its first
/// characters and ends with an ellipsis, a longer list or map its first
/// items. Returns whether anything was cut.
pub fn bound(v: &mut Value) -> bool {
    match v {
        Value::String(s) if s.chars().count() > MAX_STRING => {
            let cut: String = s.chars().take(MAX_STRING - 1).collect();
            *s = cut + "…";
            true
        }
        Value::Array(items) => {
            let mut cut = items.len() > MAX_ITEMS;
            items.truncate(MAX_ITEMS);
            for i in items.iter_mut() {
                cut |= bound(i);
            }
            cut
        }
        Value::Object(map) => {
            let mut cut = false;
            if map.len() > MAX_ITEMS {
                let extra: Vec<String> = map.keys().skip(MAX_ITEMS).cloned().collect();
                for k in extra {
                    map.remove(&k);
                }
                cut = true;
            }
            for (_, i) in map.iter_mut() {
                cut |= bound(i);
            }
            cut
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn long_strings_lists_and_maps_are_cut_to_the_documented_bounds() {
        let many: serde_json::Map<String, Value> =
            (0..100).map(|i| (format!("k{i:03}"), json!(i))).collect();
        let mut v = json!({
            "note": "é".repeat(5000),
            "list": (0..500).collect::<Vec<_>>(),
            "map": many,
            "short": "fine",
        });
        assert!(bound(&mut v));
        let note = v["note"].as_str().unwrap();
        assert_eq!(note.chars().count(), MAX_STRING);
        assert!(note.ends_with('…'));
        assert_eq!(v["list"].as_array().unwrap().len(), MAX_ITEMS);
        assert_eq!(v["map"].as_object().unwrap().len(), MAX_ITEMS);
        assert_eq!(v["short"], "fine");
        assert!(serde_json::to_vec(&v).unwrap().len() <= MAX_BODY);
        let mut small = json!({"a": ["b"], "c": 1});
        assert!(!bound(&mut small));
    }
}
