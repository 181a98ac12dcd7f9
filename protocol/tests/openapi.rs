//! `docs/openapi.yaml` against the endpoint table and the error registry: adding an endpoint or
//! a code without documenting it (or documenting one that does not exist) fails here.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sigil_protocol::endpoint::ENDPOINTS;
use sigil_protocol::error::Code;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn openapi() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("docs/openapi.yaml");
    serde_norway::from_str(&text).expect("docs/openapi.yaml is YAML")
}

#[test]
fn every_endpoint_is_documented_and_nothing_else() {
    let doc = openapi();
    let paths = doc["paths"].as_object().expect("paths");
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().expect("path item");
            item.keys()
                .filter(|k| METHODS.contains(&k.as_str()))
                .map(|m| (m.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let table: BTreeSet<(String, String)> = ENDPOINTS
        .iter()
        .map(|e| (e.method.as_str().to_string(), e.path.to_string()))
        .collect();
    let missing: Vec<_> = table.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&table).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/openapi.yaml and the endpoint table disagree: not documented {missing:?}; \
         documented but not in the table {extra:?}"
    );

    for e in ENDPOINTS {
        let op = &doc["paths"][e.path][e.method.as_str().to_lowercase()];
        let success = e.success.to_string();
        assert!(
            op["responses"].get(&success).is_some(),
            "{}: the documented responses lack its success status {success}",
            e.route
        );
        if e.encapsulated {
            assert_eq!(
                op["x-sigil-route"].as_str(),
                Some(e.route),
                "{}: x-sigil-route is the HPKE associated data",
                e.route
            );
            let body = &op["requestBody"]["content"]["application/sigil-encapsulated"];
            assert!(
                body.is_object(),
                "{}: no encapsulated request body",
                e.route
            );
        } else {
            assert!(
                op.get("requestBody").is_none(),
                "{}: a plain endpoint takes no body",
                e.route
            );
        }
        if let Some(param) = e.param {
            let documented = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == param.name && p["in"] == "path");
            assert!(
                documented,
                "{}: path parameter {} undocumented",
                e.route, param.name
            );
        }
    }
}

#[test]
fn every_code_is_documented_and_nothing_else() {
    let doc = openapi();
    let schema = &doc["components"]["schemas"]["ErrorCode"];
    let documented: BTreeSet<&str> = schema["enum"]
        .as_array()
        .expect("ErrorCode.enum")
        .iter()
        .map(|v| v.as_str().expect("a code is a string"))
        .collect();
    let registry: BTreeSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    let missing: Vec<_> = registry.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&registry).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/openapi.yaml ErrorCode and the registry disagree: not documented {missing:?}; \
         documented but not in the registry {extra:?}"
    );

    // Each code's statuses, as the registry has them.
    let codes = schema["x-sigil-codes"].as_object().expect("x-sigil-codes");
    let statuses: BTreeMap<&str, Vec<u64>> = codes
        .iter()
        .map(|(k, v)| {
            let s = v["statuses"]
                .as_array()
                .expect("statuses")
                .iter()
                .map(|s| s.as_u64().expect("a status is a number"))
                .collect();
            (k.as_str(), s)
        })
        .collect();
    for c in Code::ALL {
        let want: Vec<u64> = c.statuses().iter().map(|s| u64::from(*s)).collect();
        assert_eq!(
            statuses.get(c.as_str()),
            Some(&want),
            "x-sigil-codes.{}.statuses",
            c.as_str()
        );
    }
    assert_eq!(
        codes.len(),
        Code::ALL.len(),
        "x-sigil-codes has extra codes"
    );

    // Every error body names its code through the registry's schema.
    assert_eq!(
        doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
}
