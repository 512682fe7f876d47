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

/// The runner's `INVISIBLE_RANGES` (deploy/runner/lib/config.mjs) is the controller's table.
#[test]
fn the_runner_refuses_the_same_invisible_characters() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/runner/lib/config.mjs");
    let js = std::fs::read_to_string(path).unwrap();
    let start = js.find("export const INVISIBLE_RANGES = [").expect("INVISIBLE_RANGES");
    let block = &js[start..start + js[start..].find("];").unwrap()];
    let hex = |s: &str| u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).unwrap();
    let runner: Vec<(u32, u32)> = block
        .lines()
        .filter_map(|l| l.trim().strip_prefix('[')?.strip_suffix("],")?.split_once(','))
        .map(|(a, b)| (hex(a), hex(b)))
        .collect();
    assert_eq!(runner, fly_preview_controller::model::invisible::INVISIBLE_RANGES);
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
