//! Shared by the development KMS tests: the two-key configuration both suites run against.
#![allow(dead_code)]

use serde_json::{Value, json};

/// A configuration listening on 127.0.0.1:0 in `region` with two keys usable with the
/// credentials `akid`/`secret`: `enclave-key` (alias `alias/sigil`), which requires a
/// Recipient and whose policy also has the fields of `enclave_policy`, and `plain-key`, which
/// does not and also has the fields of `plain_key`.
pub fn two_keys(
    region: &str,
    akid: &str,
    secret: &str,
    enclave_policy: Value,
    plain_key: Value,
) -> Value {
    let credentials = json!([{"access_key_id": akid, "secret_access_key": secret}]);
    let mut enclave = json!({
        "key_id": "enclave-key",
        "aliases": ["alias/sigil"],
        "policy": {"allowed_credentials": credentials, "require_recipient": true}
    });
    extend(&mut enclave["policy"], enclave_policy);
    let mut plain = json!({
        "key_id": "plain-key",
        "policy": {"allowed_credentials": credentials, "require_recipient": false}
    });
    extend(&mut plain, plain_key);
    json!({"listen": "127.0.0.1:0", "region": region, "keys": [enclave, plain]})
}

fn extend(object: &mut Value, fields: Value) {
    let object = object.as_object_mut().unwrap();
    for (k, v) in fields.as_object().unwrap() {
        object.insert(k.clone(), v.clone());
    }
}
