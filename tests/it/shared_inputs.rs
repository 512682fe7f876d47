//! The shared accept/refuse cases (`testdata/repo-input-cases.json`, also checked by the
//! runner's own tests; `testdata/root-directory-cases.json`): the controller's validation
//! agrees on every `ok`.

use fly_preview_controller::model::validate::{branch, repo_url, root_directory};
use serde_json::Value;

fn cases() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/repo-input-cases.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn validation_agrees_with_every_shared_case() {
    let all = cases();
    let hosts: Vec<String> = all["allowed_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_owned())
        .collect();
    let mut wrong = Vec::new();
    let mut total = 0;
    for (field, check) in [
        ("repo_url", &(|v: &str| repo_url(v, &hosts).is_ok()) as &dyn Fn(&str) -> bool),
        ("branch", &|v: &str| branch(v).is_ok()),
    ] {
        for case in all[field].as_array().unwrap() {
            total += 1;
            let value = case["value"].as_str().unwrap();
            let ok = case["ok"].as_bool().unwrap();
            if check(value) != ok {
                wrong.push(format!("{field} {value:?}: expected ok={ok} ({})", case["why"]));
            }
        }
    }
    println!("shared input cases: {total} checked");
    assert!(wrong.is_empty(), "{} of {total} disagree:\n{}", wrong.len(), wrong.join("\n"));
}

#[test]
fn root_directory_validation_agrees_with_every_shared_case() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/root-directory-cases.json");
    let all: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = all["root_directory"].as_array().unwrap();
    assert!(cases.len() >= 15);
    let wrong: Vec<String> = cases
        .iter()
        .filter(|c| {
            root_directory(c["value"].as_str().unwrap()).is_ok() != c["ok"].as_bool().unwrap()
        })
        .map(|c| format!("{:?}: expected ok={}", c["value"], c["ok"]))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
