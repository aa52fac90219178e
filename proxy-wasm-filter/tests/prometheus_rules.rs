//! The shipped Prometheus alert rules (`examples/prometheus/botauth-alerts.yml`) under
//! `promtool` (Debian's `prometheus` package; `cargo xtask test` installs it when missing, or
//! set `BOTAUTH_PROMTOOL`): the rules are valid, their unit tests
//! (`botauth-alerts.test.yml`: every alert fires on its synthetic series and stays quiet on
//! healthy ones) pass, and those unit tests can fail: with any one alert's expression
//! replaced by one that never fires, `promtool test rules` must report a failure.
//! Whether the rules query only metrics the filter emits is `envoy_metrics.rs`'s job.
#![cfg(not(target_arch = "wasm32"))]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn promtool() -> PathBuf {
    if let Some(p) = std::env::var_os("BOTAUTH_PROMTOOL") {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("promtool is not on PATH: `cargo xtask test` installs Debian's `prometheus`; or set BOTAUTH_PROMTOOL")
    })
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(promtool()).current_dir(dir).args(args).output().unwrap_or_else(|e| panic!("promtool: {e}"))
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

const RULES: &str = "botauth-alerts.yml";
const TESTS: &str = "botauth-alerts.test.yml";

fn examples() -> PathBuf {
    root().join("examples/prometheus")
}

#[test]
fn rules_are_valid_and_their_unit_tests_pass() {
    let check = run(&examples(), &["check", "rules", RULES]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(text(&check).contains("SUCCESS: 6 rules found"), "{}", text(&check));
    let test = run(&examples(), &["test", "rules", TESTS]);
    assert!(test.status.success(), "{}", text(&test));
}

/// The rules file with the expression of alert `name` replaced by one that never fires.
fn without_alert(rules: &str, name: &str) -> String {
    let mut out = String::new();
    let mut in_alert = false;
    let mut skipping: Option<usize> = None;
    for line in rules.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(skip_indent) = skipping {
            if line.trim().is_empty() || indent > skip_indent {
                continue;
            }
            skipping = None;
        }
        if let Some(alert) = line.trim_start().strip_prefix("- alert:") {
            in_alert = alert.trim() == name;
        }
        if in_alert && line.trim_start().starts_with("expr:") {
            out.push_str(&format!("{}expr: vector(1) < 0\n", " ".repeat(indent)));
            skipping = Some(indent);
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn each_alert_is_shown_to_fire() {
    let rules = std::fs::read_to_string(examples().join(RULES)).unwrap_or_else(|e| panic!("{RULES}: {e}"));
    let tests = std::fs::read_to_string(examples().join(TESTS)).unwrap_or_else(|e| panic!("{TESTS}: {e}"));
    let names: Vec<&str> =
        rules.lines().filter_map(|l| l.trim_start().strip_prefix("- alert:")).map(str::trim).collect();
    assert_eq!(names.len(), 6, "{names:?}");
    let dir = std::env::temp_dir().join(format!("botauth-promtool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    std::fs::write(dir.join(TESTS), &tests).unwrap_or_else(|e| panic!("{e}"));
    for name in &names {
        let mutated = without_alert(&rules, name);
        assert_ne!(mutated, rules, "{name}: its expression was replaced");
        std::fs::write(dir.join(RULES), &mutated).unwrap_or_else(|e| panic!("{e}"));
        let check = run(&dir, &["check", "rules", RULES]);
        assert!(check.status.success(), "{name}: the mutated file is still valid: {}", text(&check));
        let test = run(&dir, &["test", "rules", TESTS]);
        let out = text(&test);
        assert!(!test.status.success(), "{name}: a rule that never fires must fail the unit tests:\n{out}");
        assert!(out.contains(name), "{name}: the failure names the alert:\n{out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
