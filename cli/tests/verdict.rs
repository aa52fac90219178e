//! `botauth verdict sign|check` (the authenticated verdict, docs/verdict-auth.md): forged,
//! replayed, moved, future and unknown-kid headers are refused with their reason and exit 1,
//! a rotated key is accepted, usage errors exit 2; and the documentation's Python checker and
//! worked example, run as written, agree with `botauth verdict sign`.

mod common;

use common::{run, Scratch};

const SECRET_1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 0123456789abcdef × 2
const SECRET_2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="; // fedcba9876543210 × 2
const VERDICT: &str = r#"verified;keyid="poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";label="sig1""#;
const T: u64 = 1_735_689_700;
const DOC: &str = include_str!("../../docs/verdict-auth.md");

/// The request the tests sign: (method, authority, path).
const REQ: (&str, &str, &str) = ("GET", "Example.com:8443", "/articles/1?lang=en");

fn sign(key: &str, verdict: &str, (method, authority, path): (&str, &str, &str), t: u64) -> String {
    let t = t.to_string();
    let r = run(&[
        "verdict",
        "sign",
        "--key",
        key,
        "--verdict",
        verdict,
        "--method",
        method,
        "--authority",
        authority,
        "--path",
        path,
        "--now",
        &t,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout.trim_end().to_owned()
}

fn check(
    keys: &[&str],
    auth: &str,
    verdict: &str,
    (method, authority, path): (&str, &str, &str),
    now: u64,
) -> (i32, String) {
    let now = now.to_string();
    let mut args = vec!["verdict", "check"];
    for k in keys {
        args.extend(["--key", k]);
    }
    args.extend([
        "--auth",
        auth,
        "--verdict",
        verdict,
        "--method",
        method,
        "--authority",
        authority,
        "--path",
        path,
        "--now",
        &now,
        "--max-age",
        "30",
    ]);
    let r = run(&args);
    (r.code, format!("{}{}", r.stdout, r.stderr))
}

fn k1() -> String {
    format!("k1={SECRET_1}")
}

#[test]
fn a_good_header_is_accepted_and_the_rotated_key_too() {
    let auth = sign(&k1(), VERDICT, REQ, T);
    assert!(auth.starts_with(&format!("t={T}, kid=\"k1\", mac=:")), "{auth}");
    let (code, out) = check(&[&k1()], &auth, VERDICT, REQ, T + 3);
    assert_eq!((code, out.as_str()), (0, "ok: kid=k1 t=1735689700 age=3\n"));
    // The authority is compared lower-cased.
    let (code, _) = check(&[&k1()], &auth, VERDICT, ("GET", "example.com:8443", REQ.2), T);
    assert_eq!(code, 0);
    // Rotation: the origin accepts old and new while botauth switches from k1 to k2.
    let k2 = format!("k2={SECRET_2}");
    let rotated = sign(&k2, VERDICT, REQ, T);
    assert!(rotated.contains("kid=\"k2\""), "{rotated}");
    for auth in [&auth, &rotated] {
        let (code, out) = check(&[&k1(), &k2], auth, VERDICT, REQ, T);
        assert_eq!(code, 0, "{out}");
    }
    let (code, out) = check(&[&k2, &k1()], &rotated, VERDICT, REQ, T);
    assert_eq!((code, out.as_str()), (0, "ok: kid=k2 t=1735689700 age=0\n"));
    // A key given as a file (off the command line).
    let dir = Scratch::new();
    let file = dir.write("k1.b64", format!("{SECRET_1}\n"));
    let (code, out) = check(&[&format!("k1=@{file}")], &auth, VERDICT, REQ, T);
    assert_eq!(code, 0, "{out}");
}

/// (name, keys, header, verdict, request, now, expected output).
type Refusal<'a> = (&'a str, Vec<&'a str>, String, &'a str, Req<'a>, u64, &'a str);
type Req<'a> = (&'a str, &'a str, &'a str);

#[test]
fn forged_replayed_moved_future_and_unknown_are_refused() {
    let auth = sign(&k1(), VERDICT, REQ, T);
    let k1 = k1();
    let other_secret = format!("k1={SECRET_2}");
    let k9 = format!("k9={SECRET_2}");
    let forged_mac = format!("t={T}, kid=\"k1\", mac=:{}=:", "A".repeat(43));
    let cases: Vec<Refusal<'_>> = vec![
        ("forged: bad mac", vec![&k1], forged_mac.clone(), VERDICT, REQ, T, "refused: bad_mac\n"),
        ("forged: other key, same kid", vec![&other_secret], auth.clone(), VERDICT, REQ, T, "refused: bad_mac\n"),
        (
            "forged: t changed",
            vec![&k1],
            auth.replace("t=1735689700", "t=1735689710"),
            VERDICT,
            REQ,
            T,
            "refused: bad_mac\n",
        ),
        (
            "forged: other verdict",
            vec![&k1],
            auth.clone(),
            r#"verified;keyid="x";label="sig1""#,
            REQ,
            T,
            "refused: bad_mac\n",
        ),
        ("replayed", vec![&k1], auth.clone(), VERDICT, REQ, T + 31, "refused: stale (age 31 s)\n"),
        ("moved: other path", vec![&k1], auth.clone(), VERDICT, ("GET", REQ.1, "/articles/2"), T, "refused: bad_mac\n"),
        (
            "moved: other query",
            vec![&k1],
            auth.clone(),
            VERDICT,
            ("GET", REQ.1, "/articles/1"),
            T,
            "refused: bad_mac\n",
        ),
        (
            "moved: other authority",
            vec![&k1],
            auth.clone(),
            VERDICT,
            ("GET", "example.org:8443", REQ.2),
            T,
            "refused: bad_mac\n",
        ),
        (
            "moved: default port",
            vec![&k1],
            auth.clone(),
            VERDICT,
            ("GET", "example.com", REQ.2),
            T,
            "refused: bad_mac\n",
        ),
        ("moved: other method", vec![&k1], auth.clone(), VERDICT, ("POST", REQ.1, REQ.2), T, "refused: bad_mac\n"),
        ("from the future", vec![&k1], auth.clone(), VERDICT, REQ, T - 6, "refused: from_future (6 s ahead)\n"),
        ("unknown kid", vec![&k9], auth.clone(), VERDICT, REQ, T, "refused: unknown_kid\n"),
        (
            "malformed",
            vec![&k1],
            auth.replace(", mac=", ", mac2="),
            VERDICT,
            REQ,
            T,
            "refused: malformed (unknown_member)\n",
        ),
        ("malformed: empty", vec![&k1], String::new(), VERDICT, REQ, T, "refused: malformed (missing_t)\n"),
    ];
    let mut failed = Vec::new();
    for (name, keys, header, verdict, req, now, want) in cases {
        let (code, out) = check(&keys, &header, verdict, req, now);
        if (code, out.as_str()) != (1, want) {
            failed.push(format!("{name}: exit {code}, {out:?}, expected 1, {want:?}"));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
    // The age limit is inclusive, the skew allowance is 5 s.
    assert_eq!(check(&[&k1], &auth, VERDICT, REQ, T + 30).0, 0);
    assert_eq!(check(&[&k1], &auth, VERDICT, REQ, T - 5).0, 0);
}

#[test]
fn usage_errors_exit_2() {
    let auth = sign(&k1(), VERDICT, REQ, T);
    for (name, key, want) in [
        ("short secret", "k1=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZQ==", "31 bytes, at least 32"),
        ("not base64", "k1=not base64!", "not base64"),
        ("no kid", "MDEy", "KID=BASE64"),
        ("bad kid", &format!("k 1={SECRET_1}"), "kid may only have"),
        ("missing file", "k1=@/nonexistent/botauth-k1", "cannot read the secret of key k1"),
    ] {
        let (code, out) = check(&[key], &auth, VERDICT, REQ, T);
        assert_eq!(code, 2, "{name}: {out}");
        assert!(out.contains(want), "{name}: {out}");
        assert!(!out.contains(SECRET_1), "{name}: the secret is never echoed: {out}");
    }
    let r = run(&[
        "verdict",
        "check",
        "--auth",
        &auth,
        "--verdict",
        VERDICT,
        "--method",
        "GET",
        "--authority",
        "a",
        "--path",
        "/",
    ]);
    assert_eq!(r.code, 2, "no --key: {}", r.stderr);
    let r = run(&[
        "verdict",
        "sign",
        "--key",
        &k1(),
        "--verdict",
        "a\nb",
        "--method",
        "GET",
        "--authority",
        "a",
        "--path",
        "/",
    ]);
    assert_eq!(r.code, 2, "control character: {}", r.stderr);
    assert!(r.stderr.contains("invalid_binding (verdict"), "{}", r.stderr);
}

/// The text between `<!-- NAME: begin -->` and `<!-- NAME: end -->` in the doc, inside its
/// code fence.
fn doc_block(name: &str) -> String {
    let begin = format!("<!-- {name}: begin -->");
    let end = format!("<!-- {name}: end -->");
    let start = DOC.find(&begin).unwrap_or_else(|| panic!("docs/verdict-auth.md has no {begin}")) + begin.len();
    let len = DOC[start..].find(&end).unwrap_or_else(|| panic!("no {end}"));
    let block = DOC[start..start + len].trim();
    let body = block.split_once('\n').map(|(fence, rest)| {
        assert!(fence.starts_with("```"), "{name}: not a code fence: {fence}");
        rest
    });
    body.and_then(|b| b.strip_suffix("```")).unwrap_or_else(|| panic!("{name}: no closing fence")).to_owned()
}

#[test]
fn the_documented_worked_example_is_what_botauth_signs() {
    let canonical = doc_block("verdict-auth-example");
    let canonical = canonical.strip_suffix('\n').unwrap_or(&canonical);
    let header = doc_block("verdict-auth-header");
    assert_eq!(sign(&k1(), VERDICT, REQ, T), header.trim());
    // The documented canonical string is the one core MACs.
    let binding =
        botauth_core::verdict_auth::Binding { verdict: VERDICT, method: REQ.0, authority: REQ.1, path: REQ.2 };
    let core = botauth_core::verdict_auth::canonical(&binding, "k1", T).unwrap();
    assert_eq!(String::from_utf8(core).unwrap(), canonical);
}

#[test]
fn the_documented_python_checker_agrees_with_botauth() {
    let python = doc_block("verdict-auth-python");
    let dir = Scratch::new();
    // A driver around the documented function: one JSON case per line in, one result out.
    let driver = format!(
        "{python}\n\nimport json, sys\nfor line in sys.stdin:\n    c = json.loads(line)\n    \
         keys = {{k: base64.b64decode(v) for k, v in c['keys'].items()}}\n    \
         r = check_verdict_auth(c['auth'], c['verdict'], c['method'], c['authority'], c['path'], keys, 30, c['now'])\n    \
         print(r or 'ok')\n"
    );
    let script = dir.write("check.py", driver);
    let auth = sign(&k1(), VERDICT, REQ, T);
    let rotated = sign(&format!("k2={SECRET_2}"), VERDICT, REQ, T);
    let keys = serde_json::json!({ "k1": SECRET_1, "k2": SECRET_2 });
    let only_k2 = serde_json::json!({ "k2": SECRET_2 });
    let case = |auth: &str, keys: &serde_json::Value, (method, authority, path): (&str, &str, &str), now: u64| {
        serde_json::json!({
            "auth": auth, "verdict": VERDICT, "method": method, "authority": authority, "path": path,
            "keys": keys, "now": now,
        })
        .to_string()
    };
    let cases = [
        (case(&auth, &keys, REQ, T + 3), "ok"),
        (case(&rotated, &keys, REQ, T), "ok"),
        (case(&auth, &keys, ("GET", "example.com:8443", REQ.2), T), "ok"),
        (case(&auth, &keys, ("GET", REQ.1, "/articles/2"), T), "bad_mac"),
        (case(&auth, &keys, ("POST", REQ.1, REQ.2), T), "bad_mac"),
        (case(&auth, &keys, ("GET", "example.org:8443", REQ.2), T), "bad_mac"),
        (case(&auth, &keys, REQ, T + 31), "stale"),
        (case(&auth, &keys, REQ, T - 6), "from_future"),
        (case(&auth, &only_k2, REQ, T), "unknown_kid"),
        (case(&format!("t={T}, kid=\"k1\", mac=:{}=:", "A".repeat(43)), &keys, REQ, T), "bad_mac"),
        (case(&auth.replace(", mac=", ", mac2="), &keys, REQ, T), "malformed"),
        (case(&auth.replace("t=", "t=-"), &keys, REQ, T), "malformed"),
        (case("", &keys, REQ, T), "malformed"),
        // The "t" and "kid" members swapped round: order does not matter.
        (case(&format!("kid=\"k1\", {}", auth.replace("kid=\"k1\", ", "")), &keys, REQ, T), "ok"),
    ];
    let input: String = cases.iter().map(|(c, _)| format!("{c}\n")).collect();
    let out = std::process::Command::new("python3")
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().map(|mut s| s.write_all(input.as_bytes())).transpose()?;
            child.wait_with_output()
        })
        .unwrap_or_else(|e| panic!("python3 is needed for this test: {e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    let want: Vec<&str> = cases.iter().map(|(_, w)| *w).collect();
    assert_eq!(got, want);
}
