//! `botauth report` end to end on generated logs: lines are made by core's own
//! `outcome::log_event` / `request_event` (the functions the Fastly service and the
//! proxy-wasm filter call), wrapped as the hosts write them (Fastly NDJSON, Viceroy's
//! `botauth :: `, Envoy's and Kong's log lines). Golden reports, every reason code, gzip,
//! bad lines, windows, groupings, each diagnosis rule (positive and negative), a large
//! stdin stream in bounded memory, the progress bar on a terminal, the bundled sample in
//! examples/logs/ and its README output, and the HTML page rendered by headless Chromium.
//!
//! `BOTAUTH_BLESS=1 cargo test -p botauth-cli --test report` rewrites the golden files,
//! the bundled sample and the README block from the generator.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use botauth_core::outcome::{log_event, request_event, EventContext};
use botauth_core::{Mode, Reason, Rejected, Verdict, Verified};
use flate2::write::GzEncoder;
use flate2::Compression;

mod common;

use common::{json, Scratch, BIN};

const TEST_KEYID: &str = "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";
/// 2026-12-02T17:00:00Z.
const T0: u64 = 1_796_230_800;

// ---- harness ----------------------------------------------------------------------------

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Run `botauth` in `cwd` with `stdin`.
fn botauth_in(cwd: &Path, args: &[&str], stdin: &[u8]) -> Out {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Out {
        code: out.status.code().expect("killed by a signal"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Run and insist on exit 0.
fn ok(cwd: &Path, args: &[&str], stdin: &[u8]) -> Out {
    let o = botauth_in(cwd, args, stdin);
    assert_eq!(o.code, 0, "botauth {args:?}\nstdout:\n{}\nstderr:\n{}", o.stdout, o.stderr);
    o
}

/// `report --json` of `lines` fed through stdin.
fn report_json(lines: &[String], extra: &[&str]) -> serde_json::Value {
    let s = Scratch::new();
    let mut args = vec!["report", "--json"];
    args.extend_from_slice(extra);
    json(&ok(&s.0, &args, lines.join("\n").as_bytes()).stdout)
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn bless() -> bool {
    std::env::var_os("BOTAUTH_BLESS").is_some()
}

/// Compare `actual` with the golden file (or write it when blessing).
fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if bless() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (BOTAUTH_BLESS=1 writes it)", path.display()));
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(5)
            .map(|(i, (a, b))| format!("line {}:\n- {a}\n+ {b}", i + 1))
            .collect();
        panic!(
            "{} differs from the report ({} vs {} lines); BOTAUTH_BLESS=1 rewrites it\n{}",
            path.display(),
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::new(9));
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out).unwrap();
    out
}

// ---- line generator ---------------------------------------------------------------------

/// xorshift64*: deterministic across platforms.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pct(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

fn verified(agent: &str, keyid: &str) -> Verdict {
    Verdict::Verified(Verified {
        agent: Some(agent.into()),
        claimed_agent: None,
        keyid: keyid.into(),
        label: "sig1".into(),
        created: None,
        expires: None,
        nonce: None,
        ..Verified::default()
    })
}

fn rejected(reason: Reason, agent: Option<&str>, keyid: Option<&str>) -> Verdict {
    Verdict::Rejected(Rejected {
        reason,
        label: Some("sig1".into()),
        agent: agent.map(Into::into),
        keyid: keyid.map(Into::into),
    })
}

/// The Fastly service's line (with core's `request_event`).
fn fastly(v: &Verdict, us: u64, time: u64, mode: Mode, target: &str, pop: &str, limited: bool) -> String {
    let ctx = EventContext { time, mode, target };
    let limited = if limited { "true" } else { "false" };
    request_event(v, us, &ctx, &[("pop", pop), ("role", "direct"), ("rate_limited", limited)])
}

/// An older Fastly line: `log_event` only (no time, mode, path, status).
fn fastly_old(v: &Verdict, us: u64, pop: &str) -> String {
    log_event(v, us, &[("pop", pop), ("role", "direct"), ("rate_limited", "false")])
}

/// (y, m, d, hh, mm, ss) of unix seconds, by the `time` crate.
fn civil(t: u64) -> (i32, u8, u8, u8, u8, u8) {
    let t = i64::try_from(t).ok().and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok()).expect("a unix time");
    (t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
}

/// The proxy-wasm filter's line in an Envoy log (no `time` in the event: the prefix has it).
fn envoy(v: &Verdict, us: u64, time: u64, mode: &str) -> String {
    let (y, mo, d, h, mi, s) = civil(time);
    format!(
        "[{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{:03}][12][info][wasm] \
         [source/extensions/common/wasm/context.cc:1192] wasm log botauth botauth_vm: botauth: {}",
        time % 1000,
        log_event(v, us, &[("mode", mode), ("phase", "headers")])
    )
}

/// The filter's line in Kong's (nginx) error log.
fn kong(v: &Verdict, us: u64, time: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(time);
    format!(
        "{y:04}/{mo:02}/{d:02} {h:02}:{mi:02}:{s:02} [info] 1234#0: *5 [proxy-wasm][\"botauth\" #1] botauth: {}, \
         client: 127.0.0.1, server: kong, request: \"GET / HTTP/1.1\", host: \"example.test\"",
        log_event(v, us, &[("mode", "monitor"), ("phase", "headers")])
    )
}

const POPS: [&str; 4] = ["AMS", "FRA", "LHR", "IAD"];
const SEARCHBOT: &str = "https://searchbot.example";
const SHOPPER: &str = "https://shopper.example";
const CRAWLER: &str = "https://crawler.example";
const SKEWED: &str = "https://skewed.example";
const TEST_SIGNER: &str = "https://test-signer.example";
const KEY_OLD: &str = "otMqcjr17mGyruktGvJU8oojQTSMHlVm7uO-lrcqbdg";
const KEY_NEW: &str = "Ufx8Dbx-pXrfzLMyTbV6SkgX5ra5dB0PdjQ19qaOVdk";
const KEY_SHOPPER: &str = "kS4uT8bW6XKp3YxN0dXyQ2d1mI7h9gJzF5nRtVwLcEo";
const KEY_CRAWLER: &str = "c7Vb2NqWm1Xh8Yt4KpLs9DfGj3Ra6ZeUo0IyTnBxMwQ";
const KEY_SKEWED: &str = "sK3wQ9eR7tY1uI5oP2aS8dF4gH6jK0lZxC1vB3nM5qW";

fn latency(rng: &mut Rng, base: u64) -> u64 {
    let tail = if rng.pct(2) { rng.below(1500) } else { 0 };
    base + rng.below(base) + tail
}

/// The bundled sample: two hours of a Fastly service in monitor mode (2026-12-02
/// 17:00–19:00 UTC), with a key rotation, a skewed clock, a path rewrite, the RFC 9421
/// test key, a directory outage, older lines without time/mode/path/status and bad lines.
fn sample() -> Vec<String> {
    let mut rng = Rng(0x0b07_a075_2026_1202);
    let mut out = Vec::new();
    // Older lines, logged before the service wrote `request_event` (no time/mode/path/status).
    for _ in 0..60 {
        let pop = POPS[rng.below(4) as usize];
        let v = if rng.pct(90) {
            verified(SEARCHBOT, KEY_OLD)
        } else {
            rejected(Reason::Expired, Some(SEARCHBOT), Some(KEY_OLD))
        };
        out.push(fastly_old(&v, latency(&mut rng, 30), pop));
    }
    out.push(r#"{"agent":"https://searchbot.example","keyid":"otMqcjr17mGyruk"#.to_owned());
    for minute in 0..120u64 {
        let mut lines: Vec<(u64, String)> = Vec::new();
        for _ in 0..24 {
            let time = T0 + minute * 60 + rng.below(60);
            let pop = POPS[rng.below(4) as usize];
            let who = rng.below(24);
            let n = rng.below(900);
            let line = match who {
                // searchbot: rotates its key at 18:20; this verifier keeps the old one.
                0..=8 => {
                    let limited = rng.pct(2);
                    let v = if minute >= 80 && rng.pct(45) {
                        rejected(Reason::UnknownKey, Some(SEARCHBOT), Some(KEY_NEW))
                    } else {
                        verified(SEARCHBOT, KEY_OLD)
                    };
                    let target = format!("/articles/{n}?ref=feed");
                    fastly(&v, latency(&mut rng, 30), time, Mode::Monitor, &target, pop, limited)
                }
                // shopper: fine, but its directory is down 17:40–17:46, and a few expired.
                9..=13 => {
                    let v = if (40..46).contains(&minute) && rng.pct(80) {
                        rejected(Reason::DirectoryUnavailable, Some(SHOPPER), Some(KEY_SHOPPER))
                    } else if rng.pct(4) {
                        rejected(Reason::Expired, Some(SHOPPER), Some(KEY_SHOPPER))
                    } else if rng.pct(2) {
                        rejected(Reason::Replay, Some(SHOPPER), Some(KEY_SHOPPER))
                    } else {
                        verified(SHOPPER, KEY_SHOPPER)
                    };
                    fastly(&v, latency(&mut rng, 35), time, Mode::Monitor, &format!("/products/{n}"), pop, false)
                }
                // crawler: something rewrites /search (its query is reordered).
                14..=17 => {
                    let search = rng.pct(55);
                    let v = if (search && rng.pct(75)) || rng.pct(1) {
                        rejected(Reason::SignatureInvalid, Some(CRAWLER), Some(KEY_CRAWLER))
                    } else {
                        verified(CRAWLER, KEY_CRAWLER)
                    };
                    let target = if search { format!("/search?q={n}&lang=en") } else { format!("/docs/{n}") };
                    fastly(&v, latency(&mut rng, 40), time, Mode::Monitor, &target, pop, false)
                }
                // skewed: its clock runs ahead.
                18..=19 => {
                    let v = if rng.pct(70) {
                        rejected(Reason::NotYetValid, Some(SKEWED), Some(KEY_SKEWED))
                    } else {
                        verified(SKEWED, KEY_SKEWED)
                    };
                    fastly(&v, latency(&mut rng, 30), time, Mode::Monitor, &format!("/feed/{n}"), pop, false)
                }
                // test-signer: verified with the RFC 9421 test key (a misconfiguration).
                20 => {
                    let v = verified(TEST_SIGNER, TEST_KEYID);
                    fastly(&v, latency(&mut rng, 30), time, Mode::Monitor, "/", pop, false)
                }
                // malformed traffic from agents nobody knows.
                _ => {
                    let v = match rng.below(4) {
                        0 => rejected(Reason::MalformedField(botauth_core::Field::SignatureInput), None, None),
                        1 => rejected(Reason::SignatureAgentMissing, None, Some(KEY_NEW)),
                        2 => rejected(Reason::AgentNotAllowed, Some("https://unknown-bot.example"), None),
                        _ => rejected(Reason::TagMismatch, None, None),
                    };
                    fastly(&v, latency(&mut rng, 8), time, Mode::Monitor, &format!("/p/{n}"), pop, false)
                }
            };
            lines.push((time, line));
        }
        lines.sort_by_key(|(t, _)| *t);
        out.extend(lines.into_iter().map(|(_, l)| l));
        if minute == 70 {
            out.push("not a log line".to_owned());
            out.push(r#"{"verdict":"verified","verify_us":"fast"}"#.to_owned());
        }
    }
    out
}

const SAMPLE: &str = "examples/logs/sample.ndjson.gz";
const ENVOY_SAMPLE: &str = "examples/logs/envoy-filter.log";

/// The Envoy sample: 20 minutes of the proxy-wasm filter in monitor mode, with Envoy's own
/// lines between (not events) and a directory fetch event.
fn envoy_sample() -> Vec<String> {
    let mut rng = Rng(0xe11_0e11);
    let mut out = vec![
        "[2026-12-02 18:00:00.001][1][info][main] [source/server/server.cc:978] starting main dispatch loop".to_owned(),
        format!(
            "[2026-12-02 18:00:00.002][12][info][wasm] [source/extensions/common/wasm/context.cc:1192] wasm log \
             botauth botauth_vm: botauth: {}",
            r#"{"agent":"searchbot.example","directory":"https://searchbot.example/.well-known/http-message-signatures-directory","event":"directory_fetch","reason":"no_keys","result":"ok","keys":1}"#
        ),
    ];
    for i in 0..300u64 {
        let time = T0 + 3600 + i * 4;
        let v = match rng.below(10) {
            0..=5 => verified(SEARCHBOT, KEY_OLD),
            6 => rejected(Reason::UnknownKey, Some(SEARCHBOT), Some(KEY_NEW)),
            7 => verified(CRAWLER, KEY_CRAWLER),
            8 => rejected(Reason::Expired, Some(CRAWLER), Some(KEY_CRAWLER)),
            _ => rejected(Reason::SignatureBadBase64, None, None),
        };
        out.push(envoy(&v, latency(&mut rng, 25), time, "monitor"));
    }
    out
}

// ---- golden: every reason, both sources, bad lines, gzip --------------------------------

/// Every reason code (`i + 1` rejections for `Reason::ALL[i]`), half as Fastly lines and
/// half as Envoy-wrapped lines (and a few Kong and Viceroy lines), some verified and
/// unsigned traffic, and one bad line of each kind.
fn every_reason() -> Vec<String> {
    let mut out = Vec::new();
    let mut t = T0;
    for (i, reason) in Reason::ALL.iter().enumerate() {
        for k in 0..=i {
            t += 1;
            let agent = format!("https://agent{}.example", i % 5);
            let v = rejected(*reason, Some(&agent), Some("kid-a"));
            let us = 10 + (i as u64 * 7 + k as u64 * 3) % 90;
            out.push(if k % 2 == 0 {
                fastly(&v, us, t, Mode::Monitor, "/x", POPS[i % 4], false)
            } else {
                envoy(&v, us, t, "monitor")
            });
        }
    }
    for k in 0..40u64 {
        t += 1;
        let v = verified("https://agent0.example", "kid-b");
        out.push(match k % 4 {
            0 => fastly(&v, 40 + k, t, Mode::Monitor, "/ok", "AMS", false),
            1 => envoy(&v, 40 + k, t, "monitor"),
            2 => kong(&v, 40 + k, t),
            _ => format!("botauth :: {}", fastly(&v, 40 + k, t, Mode::Monitor, "/ok", "FRA", false)),
        });
    }
    for k in 0..10u64 {
        t += 1;
        out.push(fastly(&Verdict::Unsigned, k, t, Mode::Monitor, "/", "LHR", false));
    }
    out.push(String::new());
    out.push("[2026-12-02 18:00:00.001][1][info][main] starting main dispatch loop".to_owned());
    out.push(r#"{"agent":"https://agent0.example","verdict":"verif"#.to_owned());
    out.push(r#"{"agent":"https://agent0.example"}"#.to_owned());
    out.push(r#"{"verdict":"sideways","verify_us":1}"#.to_owned());
    out.push(format!("{{\"verdict\":\"verified\",\"agent\":\"{}\"}}", "y".repeat(70_000)));
    out
}

/// Add a not-UTF-8 line to `text`.
fn with_non_utf8(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.extend_from_slice(b"\n{\"verdict\":\"verified\",\"agent\":\"\xff\xfe\"}\n");
    bytes
}

#[test]
fn every_reason_code_from_both_sources() {
    let lines = every_reason();
    let input = with_non_utf8(&lines.join("\n"));
    let s = Scratch::new();
    std::fs::write(s.0.join("mixed.log"), &input).unwrap();
    let r = json(&ok(&s.0, &["report", "--json", "mixed.log"], b"").stdout);

    let n_reasons = Reason::ALL.len() as u64;
    let rejected = n_reasons * (n_reasons + 1) / 2;
    assert_eq!(r["totals"]["rejected"], rejected);
    assert_eq!(r["totals"]["verified"], 40);
    assert_eq!(r["totals"]["unsigned"], 10);
    let reasons = r["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), Reason::ALL.len(), "every code is reported");
    for (i, reason) in Reason::ALL.iter().enumerate() {
        let row = reasons.iter().find(|x| x["code"] == reason.code()).unwrap_or_else(|| panic!("{}", reason.code()));
        assert_eq!(row["count"], i as u64 + 1, "{}", reason.code());
        assert_eq!(row["status"], reason.status().code(), "{}: core's status", reason.code());
    }
    // Most frequent first: the last reason of ALL has the most.
    assert_eq!(reasons[0]["code"], Reason::ALL.last().unwrap().code());
    assert_eq!(r["lines"]["bad"], 6);
    assert_eq!(r["lines"]["blank"], 1);
    for kind in ["no_json", "bad_json", "not_an_event", "bad_value", "too_long", "not_utf8"] {
        assert_eq!(r["lines"]["bad_by_kind"][kind], 1, "{kind}");
    }
    assert_eq!(r["lines"]["bad_examples"][0]["input"], "mixed.log");
    assert_eq!(r["lines"]["events"], rejected + 50);
    // Envoy and Kong lines carry no time: the prefix gives it.
    assert!(r["window"]["time_from_line_prefix"].as_u64().unwrap() > rejected / 3);
    assert_eq!(r["window"]["events_with_time"], rejected + 50);
    assert_eq!(r["unknown_reasons"], serde_json::json!({}));
    // Every status of core appears in the readiness table.
    for status in ["400", "403", "429", "503"] {
        assert!(r["readiness"]["by_status"][status].as_u64().unwrap() > 0, "{status}");
    }
    assert_eq!(r["readiness"]["would_block"], rejected);

    let text = ok(&s.0, &["report", "mixed.log"], b"").stdout;
    golden("every-reason.txt", &text);
    let by = ok(&s.0, &["report", "mixed.log", "--by", "reason,pop"], b"").stdout;
    golden("every-reason-by-reason-pop.txt", &by);
}

#[test]
fn gzip_files_and_stdin_give_the_same_report() {
    let lines = every_reason();
    let plain = lines.join("\n");
    let s = Scratch::new();
    std::fs::write(s.0.join("plain.log"), &plain).unwrap();
    // Two gzip members (as `cat a.gz b.gz` makes), split mid-file.
    let half = plain.len() / 2;
    let cut = plain[..half].rfind('\n').unwrap() + 1;
    let mut two = gzip(&plain.as_bytes()[..cut]);
    two.extend(gzip(&plain.as_bytes()[cut..]));
    std::fs::write(s.0.join("two.log.gz"), &two).unwrap();
    let strip = |mut v: serde_json::Value| {
        v["inputs"] = serde_json::Value::Null;
        for e in v["lines"]["bad_examples"].as_array_mut().unwrap() {
            e["input"] = serde_json::Value::Null;
        }
        v
    };
    let a = json(&ok(&s.0, &["report", "--json", "plain.log"], b"").stdout);
    let b = json(&ok(&s.0, &["report", "--json", "two.log.gz"], b"").stdout);
    let c = json(&ok(&s.0, &["report", "--json"], &two).stdout);
    assert_eq!(b["inputs"][0]["gzip"], true);
    assert_eq!(c["inputs"][0]["name"], "<stdin>");
    assert_eq!(c["inputs"][0]["gzip"], true);
    assert_eq!(strip(a.clone()), strip(b));
    assert_eq!(strip(a.clone()), strip(c));
    // Two inputs add up.
    let d = json(&ok(&s.0, &["report", "--json", "plain.log", "two.log.gz"], b"").stdout);
    assert_eq!(d["totals"]["events"].as_u64().unwrap(), 2 * a["totals"]["events"].as_u64().unwrap());
    // A truncated gzip stream: the lines before the cut count, the error is reported, not fatal.
    std::fs::write(s.0.join("cut.gz"), &two[..two.len() / 3]).unwrap();
    let e = ok(&s.0, &["report", "--json", "cut.gz", "plain.log"], b"");
    let e = json(&e.stdout);
    assert!(e["inputs"][0]["error"].as_str().unwrap().starts_with("cut.gz: read error after line"), "{e:#}");
    assert_eq!(e["lines"]["input_errors"].as_array().unwrap().len(), 1);
    assert!(e["totals"]["events"].as_u64().unwrap() > a["totals"]["events"].as_u64().unwrap());
}

#[test]
fn older_lines_without_time_mode_path_status() {
    let lines: Vec<String> = (0..20u64)
        .map(|i| {
            let v = match i % 4 {
                0 => rejected(Reason::Replay, Some(SHOPPER), Some("k")),
                1 => rejected(Reason::SignatureBadBase64, Some(SHOPPER), Some("k")),
                _ => verified(SHOPPER, "k"),
            };
            fastly_old(&v, 20 + i, "AMS")
        })
        .collect();
    let r = report_json(&lines, &[]);
    assert_eq!(r["totals"]["events"], 20);
    assert_eq!(r["window"]["first"], serde_json::Value::Null);
    assert_eq!(r["series"]["buckets"], serde_json::json!([]));
    // Statuses come from core's Reason::status; no mode counts as monitor.
    assert_eq!(r["readiness"]["signed"], 20);
    assert_eq!(r["readiness"]["mode_not_logged"], 20);
    assert_eq!(r["readiness"]["by_status"], serde_json::json!({"400": 5, "429": 5}));
    let notes: Vec<&str> = r["not_computed"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    for field in ["time:", "mode:", "status:", "path:"] {
        assert!(notes.iter().any(|n| n.starts_with(field)), "{field} in {notes:?}");
    }
    // A window cannot place them: they are left out, and said so.
    let w = report_json(&lines, &["--since", "0"]);
    assert_eq!(w["totals"]["events"], 0);
    assert_eq!(w["lines"]["untimed_left_out"], 20);
}

#[test]
fn since_and_until_in_unix_seconds_and_rfc3339() {
    let lines: Vec<String> = (0..120u64)
        .map(|m| fastly(&verified(SHOPPER, "k"), 30, T0 + m * 60, Mode::Monitor, "/", "AMS", false))
        .collect();
    let all = report_json(&lines, &[]);
    assert_eq!(all["totals"]["events"], 120);
    assert_eq!(all["series"]["bucket_secs"], 60);
    assert_eq!(all["series"]["buckets"].as_array().unwrap().len(), 120);
    let a = report_json(&lines, &["--since", "2026-12-02T17:30:00Z", "--until", "2026-12-02T18:00:00Z"]);
    assert_eq!(a["totals"]["events"], 30);
    assert_eq!(a["lines"]["outside_window"], 90);
    let b = report_json(&lines, &["--since", &(T0 + 1800).to_string(), "--until", &(T0 + 3600).to_string()]);
    assert_eq!(a["totals"], b["totals"]);
    let c = report_json(&lines, &["--since", "2026-12-02T18:30:00+01:00"]);
    assert_eq!(c["totals"]["events"], 90, "offsets are honoured");
    let s = Scratch::new();
    let bad = botauth_in(&s.0, &["report", "--since", "yesterday"], b"");
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("not unix seconds nor RFC 3339"), "{}", bad.stderr);
    let order = botauth_in(&s.0, &["report", "--since", "20", "--until", "10"], b"");
    assert_eq!(order.code, 2);
    let missing = botauth_in(&s.0, &["report", "nope.log"], b"");
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("cannot open nope.log"), "{}", missing.stderr);
}

#[test]
fn by_groupings_and_percentiles() {
    let mut lines = Vec::new();
    for i in 0..100u64 {
        lines.push(fastly(&verified(SHOPPER, "k1"), i + 1, T0 + i, Mode::Monitor, "/", "AMS", false));
    }
    for i in 0..10u64 {
        let v = rejected(Reason::Expired, Some(CRAWLER), Some("k2"));
        lines.push(fastly(&v, 1000 + i, T0 + i, Mode::Monitor, "/", "FRA", false));
    }
    let r = report_json(&lines, &["--by", "agent", "--by", "pop,reason", "--by", "keyid,agent"]);
    let by: Vec<&str> = r["groups"].as_array().unwrap().iter().map(|g| g["by"].as_str().unwrap()).collect();
    assert_eq!(by, ["agent", "pop", "reason", "keyid"]);
    let agents = &r["groups"][0]["rows"];
    assert_eq!(agents[0]["key"], SHOPPER);
    assert_eq!(agents[0]["verified_ratio"], 1.0);
    // 1..=100 µs: p50 ≈ 50, p99 ≈ 99 (log buckets: within 1/32).
    let p50 = agents[0]["p50_us"].as_u64().unwrap();
    let p99 = agents[0]["p99_us"].as_u64().unwrap();
    assert!((48..=52).contains(&p50), "{p50}");
    assert!((96..=100).contains(&p99), "{p99}");
    assert_eq!(agents[1]["key"], CRAWLER);
    assert_eq!(agents[1]["verified_ratio"], 0.0);
    let pops = &r["groups"][1]["rows"];
    assert_eq!((pops[0]["key"].as_str(), pops[0]["events"].as_u64()), (Some("AMS"), Some(100)));
    let reasons = &r["groups"][2]["rows"];
    assert_eq!(reasons[0]["key"], "(verified)");
    assert_eq!(reasons[1]["key"], "expired");
    assert_eq!(r["top_reasons_per_agent"][0]["agent"], CRAWLER);
    assert_eq!(r["top_reasons_per_agent"][0]["reasons"][0]["code"], "expired");
    let s = Scratch::new();
    let bad = botauth_in(&s.0, &["report", "--by", "colour"], b"");
    assert_eq!(bad.code, 2);
}

#[test]
fn monitor_logs_show_what_enforce_would_block() {
    let mut lines = Vec::new();
    let mut t = T0;
    let mut add = |v: Verdict, mode: Mode, limited: bool, n: usize| {
        for _ in 0..n {
            t += 1;
            lines.push(fastly(&v, 10, t, mode, "/a", "AMS", limited));
        }
    };
    add(verified(SHOPPER, "k"), Mode::Monitor, false, 50);
    add(verified(SHOPPER, "k"), Mode::Monitor, true, 5);
    add(rejected(Reason::SignatureInvalid, Some(SHOPPER), Some("k")), Mode::Monitor, false, 10);
    add(rejected(Reason::MissingSignature, Some(CRAWLER), None), Mode::Monitor, false, 4);
    add(rejected(Reason::Replay, Some(CRAWLER), Some("k")), Mode::Monitor, false, 3);
    add(rejected(Reason::DirectoryUnavailable, Some(CRAWLER), Some("k")), Mode::Monitor, false, 2);
    add(rejected(Reason::Expired, Some(SKEWED), Some("k")), Mode::Enforce, false, 7);
    add(verified(SKEWED, "k"), Mode::Enforce, false, 3);
    // A reason code this build does not know, with the status the host logged.
    lines.push(
        r#"{"agent":"https://crawler.example","keyid":"k","mode":"monitor","reason":"future_reason","status":403,"time":1796230900,"verdict":"rejected","verify_us":3}"#
            .into(),
    );
    let r = report_json(&lines, &[]);
    let rd = &r["readiness"];
    assert_eq!(rd["signed"], 75);
    assert_eq!(rd["would_block"], 25);
    assert_eq!(rd["rate_limited"], 5);
    assert_eq!(rd["by_status"], serde_json::json!({"400": 4, "403": 11, "429": 8, "503": 2}));
    assert_eq!(rd["mode_not_logged"], 0);
    let shopper = rd["agents"].as_array().unwrap().iter().find(|a| a["agent"] == SHOPPER).unwrap();
    assert_eq!(shopper["signed"], 65);
    assert_eq!(shopper["would_block"], 15);
    assert_eq!(shopper["why"][0], serde_json::json!({"code": "signature_invalid", "count": 10}));
    assert_eq!(shopper["why"][1], serde_json::json!({"code": "rate_limited", "count": 5}));
    assert_eq!(r["enforced"], serde_json::json!({"signed": 10, "blocked": 7, "share": 0.7, "by_status": {"403": 7}}));
    assert_eq!(r["unknown_reasons"], serde_json::json!({"future_reason": 1}));
}

// ---- diagnoses ----------------------------------------------------------------------------

fn rules(r: &serde_json::Value) -> Vec<(String, String)> {
    r["diagnoses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["rule"].as_str().unwrap().to_owned(), d["subject"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn diagnosis_key_rotation() {
    // Verified with the old key for 30 minutes, then unknown_key with a new one.
    let mut lines = Vec::new();
    for m in 0..40u64 {
        for k in 0..5u64 {
            let t = T0 + m * 60 + k;
            let v = if m >= 30 && k < 3 {
                rejected(Reason::UnknownKey, Some(SEARCHBOT), Some(KEY_NEW))
            } else {
                verified(SEARCHBOT, KEY_OLD)
            };
            lines.push(fastly(&v, 20, t, Mode::Monitor, "/a", "AMS", false));
        }
        lines.push(fastly(&verified(SHOPPER, "k"), 20, T0 + m * 60, Mode::Monitor, "/a", "AMS", false));
    }
    let r = report_json(&lines, &[]);
    assert_eq!(rules(&r), [("key_rotation".to_owned(), SEARCHBOT.to_owned())]);
    let d = &r["diagnoses"][0];
    assert_eq!(d["count"], 30);
    let finding = d["finding"].as_str().unwrap();
    assert!(finding.contains(KEY_NEW) && finding.contains("first 2026-12-02T17:30:00Z"), "{finding}");
    assert!(finding.contains(&format!("verified with keyid {KEY_OLD} (last 2026-12-02T17:39:04Z)")), "{finding}");
    assert!(d["action"].as_str().unwrap().contains("botauth directory fetch https://searchbot.example"));
    // A few stray unknown_key (under 10 %) are not a rotation.
    let mut quiet: Vec<String> = (0..100u64)
        .map(|i| fastly(&verified(SEARCHBOT, KEY_OLD), 20, T0 + i, Mode::Monitor, "/a", "AMS", false))
        .collect();
    for i in 0..6u64 {
        quiet.push(fastly(
            &rejected(Reason::UnknownKey, Some(SEARCHBOT), Some(KEY_NEW)),
            20,
            T0 + i,
            Mode::Monitor,
            "/a",
            "AMS",
            false,
        ));
    }
    assert_eq!(rules(&report_json(&quiet, &[])), []);
}

#[test]
fn diagnosis_clock_skew() {
    let mut lines = Vec::new();
    for i in 0..20u64 {
        let ahead = if i < 14 { rejected(Reason::NotYetValid, Some(SKEWED), Some("k")) } else { verified(SKEWED, "k") };
        lines.push(fastly(&ahead, 20, T0 + i, Mode::Monitor, "/a", "AMS", false));
        let behind = if i < 12 { rejected(Reason::Expired, Some(CRAWLER), Some("k")) } else { verified(CRAWLER, "k") };
        lines.push(envoy(&behind, 20, T0 + i, "monitor"));
        // 30 % expired: not most of its traffic.
        let fine = if i < 6 { rejected(Reason::Expired, Some(SHOPPER), Some("k")) } else { verified(SHOPPER, "k") };
        lines.push(fastly(&fine, 20, T0 + i, Mode::Monitor, "/a", "AMS", false));
    }
    let r = report_json(&lines, &[]);
    let mut got = rules(&r);
    got.sort();
    assert_eq!(got, [("clock_skew".to_owned(), CRAWLER.to_owned()), ("clock_skew".to_owned(), SKEWED.to_owned())]);
    for d in r["diagnoses"].as_array().unwrap() {
        let f = d["finding"].as_str().unwrap();
        if d["subject"] == SKEWED {
            assert!(f.contains("14 of 20") && f.contains("runs ahead"), "{f}");
        } else {
            assert!(f.contains("12 of 20") && f.contains("runs behind"), "{f}");
        }
    }
}

#[test]
fn diagnosis_signature_invalid_on_one_path_prefix() {
    let mut lines = Vec::new();
    for i in 0..200u64 {
        let (target, v) = if i % 4 == 0 {
            let v = if i % 8 == 0 || i % 12 == 0 {
                rejected(Reason::SignatureInvalid, Some(CRAWLER), Some("k"))
            } else {
                verified(CRAWLER, "k")
            };
            (format!("/search/results?q={i}&b=2&a=1"), v)
        } else if i == 1 {
            ("/docs/a".to_owned(), rejected(Reason::SignatureInvalid, Some(SHOPPER), Some("k")))
        } else {
            (format!("/docs/{i}"), verified(SHOPPER, "k"))
        };
        lines.push(fastly(&v, 20, T0 + i, Mode::Monitor, &target, "AMS", false));
    }
    let r = report_json(&lines, &[]);
    assert_eq!(rules(&r), [("path_rewrite".to_owned(), "/search".to_owned())]);
    let f = r["diagnoses"][0]["finding"].as_str().unwrap().to_owned();
    assert!(f.starts_with("33 of 50 signed requests under /search (66%)"), "{f}");
    // Spread evenly over paths: not a rewrite.
    let even: Vec<String> = (0..200u64)
        .map(|i| {
            let v = if i % 5 == 0 {
                rejected(Reason::SignatureInvalid, Some(CRAWLER), Some("k"))
            } else {
                verified(CRAWLER, "k")
            };
            fastly(&v, 20, T0 + i, Mode::Monitor, &format!("/p{}/x", i % 7), "AMS", false)
        })
        .collect();
    assert_eq!(rules(&report_json(&even, &[])), []);
    // Without paths (older lines) the rule cannot apply, and the report says so.
    let old: Vec<String> = (0..20u64)
        .map(|_| fastly_old(&rejected(Reason::SignatureInvalid, Some(CRAWLER), Some("k")), 20, "AMS"))
        .collect();
    let r = report_json(&old, &[]);
    assert_eq!(rules(&r), []);
    assert!(r["not_computed"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().starts_with("path: 20 signed")));
}

#[test]
fn diagnosis_test_key() {
    let mut lines: Vec<String> =
        (0..50u64).map(|i| fastly(&verified(SHOPPER, "k"), 20, T0 + i, Mode::Monitor, "/", "AMS", false)).collect();
    // Rejected as test_key_rejected: the verifier does its job, no finding.
    lines.push(fastly(
        &rejected(Reason::TestKeyRejected, Some(TEST_SIGNER), Some(TEST_KEYID)),
        20,
        T0,
        Mode::Monitor,
        "/",
        "AMS",
        false,
    ));
    assert_eq!(rules(&report_json(&lines, &[])), []);
    // One verified request with the test key is enough.
    lines.push(envoy(&verified(TEST_SIGNER, TEST_KEYID), 20, T0 + 1, "monitor"));
    let r = report_json(&lines, &[]);
    assert_eq!(rules(&r), [("test_key".to_owned(), "*".to_owned())]);
    assert_eq!(r["diagnoses"][0]["severity"], "error");
    assert_eq!(r["diagnoses"][0]["count"], 1);
    assert!(r["diagnoses"][0]["finding"].as_str().unwrap().contains("https://test-signer.example (1)"));
}

// ---- scale -------------------------------------------------------------------------------

/// Peak resident memory of a process, KiB.
fn vm_hwm(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn large_stdin_stream_in_bounded_memory() {
    const LINES: u64 = 300_000;
    let mut child = Command::new(BIN)
        .args(["report", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let mut rng = Rng(42);
    let mut early = 0;
    let mut chunk = String::new();
    for i in 0..LINES {
        // 1000 agents and keyids (past the cap of 256), 5000 path prefixes (past 1024),
        // two days of time (past 1440 minutes: the series coarsens).
        let agent = format!("https://agent{}.example", rng.below(1000));
        let keyid = format!("kid{}", rng.below(1000));
        let v =
            if i % 10 == 0 { rejected(Reason::Expired, Some(&agent), Some(&keyid)) } else { verified(&agent, &keyid) };
        let target = format!("/p{}/item", rng.below(5000));
        chunk.push_str(&fastly(
            &v,
            10 + rng.below(500),
            T0 + i * 2 * 86_400 / LINES,
            Mode::Monitor,
            &target,
            POPS[(i % 4) as usize],
            false,
        ));
        chunk.push('\n');
        if chunk.len() > 1 << 20 {
            stdin.write_all(chunk.as_bytes()).unwrap();
            chunk.clear();
            if early == 0 && i > LINES / 10 {
                early = vm_hwm(pid);
            }
        }
    }
    stdin.write_all(chunk.as_bytes()).unwrap();
    stdin.flush().unwrap();
    // Still reading stdin: everything is aggregated, nothing reported yet.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let peak = vm_hwm(pid);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = json(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(r["totals"]["events"], LINES);
    assert_eq!(r["totals"]["rejected"], LINES / 10);
    assert_eq!(
        r["reasons"][0],
        serde_json::json!({"code": "expired", "status": 403, "count": LINES / 10, "share": 1.0})
    );
    let agents = &r["groups"][0];
    assert_eq!(agents["rows"].as_array().unwrap().len(), 257, "256 agents and (other)");
    assert_eq!(agents["rows"][256]["key"], "(other)");
    assert!(agents["folded"].as_u64().unwrap() > LINES / 2);
    assert!(r["series"]["buckets"].as_array().unwrap().len() <= 1440);
    assert!(r["series"]["bucket_secs"].as_u64().unwrap() > 60);
    let p50 = r["verify_us"]["p50"].as_u64().unwrap();
    assert!((240..=280).contains(&p50), "{p50}");
    eprintln!("report of {LINES} lines: peak RSS {peak} KiB (after 10 %: {early} KiB)");
    assert!(peak < 40 * 1024, "peak RSS {peak} KiB: not bounded");
    assert!(peak < early + 8 * 1024, "grew from {early} KiB to {peak} KiB");
}

#[test]
fn progress_bar_only_on_a_terminal() {
    let s = Scratch::new();
    let lines: Vec<String> = (0..100_000u64)
        .map(|i| fastly(&verified(SHOPPER, "k"), 20, T0 + i, Mode::Monitor, "/", "AMS", false))
        .collect();
    std::fs::write(s.0.join("big.log"), lines.join("\n")).unwrap();
    // Piped stderr: no bar.
    let piped = ok(&s.0, &["report", "big.log"], b"");
    assert_eq!(piped.stderr, "");
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIP the terminal half: util-linux `script` is not installed");
        return;
    }
    // On a terminal (script(1) gives it a pty): the bar is drawn on stderr, then cleared.
    let cmd = format!("{BIN} report big.log >/dev/null");
    let tty = Command::new("script").args(["-qec", &cmd, "/dev/null"]).current_dir(&s.0).output().unwrap();
    let seen = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{seen}");
    assert!(seen.contains("big.log") && seen.contains('\u{1b}'), "no progress bar drawn: {seen:?}");
}

// ---- the bundled sample and the README ------------------------------------------------------

#[test]
fn bundled_sample_is_the_generators() {
    let root = workspace();
    let want = sample().join("\n") + "\n";
    let envoy_want = envoy_sample().join("\n") + "\n";
    if bless() {
        std::fs::create_dir_all(root.join("examples/logs")).unwrap();
        std::fs::write(root.join(SAMPLE), gzip(want.as_bytes())).unwrap();
        std::fs::write(root.join(ENVOY_SAMPLE), &envoy_want).unwrap();
    }
    let got = gunzip(&std::fs::read(root.join(SAMPLE)).unwrap());
    assert!(got == want.as_bytes(), "{SAMPLE} is not the generator's output (BOTAUTH_BLESS=1 rewrites it)");
    assert_eq!(std::fs::read_to_string(root.join(ENVOY_SAMPLE)).unwrap(), envoy_want);
    assert!((2000..6000).contains(&want.lines().count()));
}

/// The README block between these markers is the exact output of the command above it.
const README_BEGIN: &str = "<!-- report-sample:begin -->";
const README_END: &str = "<!-- report-sample:end -->";

#[test]
fn sample_report_and_readme() {
    let root = workspace();
    let s = Scratch::new();
    let html = s.path("report.html");
    let out = ok(&root, &["report", SAMPLE, "--html", &html], b"").stdout;
    let out = out.replace(&html, "report.html");
    golden("sample.txt", &out);
    let r = json(&ok(&root, &["report", SAMPLE, "--json"], b"").stdout);
    let mut got = rules(&r);
    got.sort();
    assert_eq!(
        got,
        [
            ("clock_skew".to_owned(), SKEWED.to_owned()),
            ("key_rotation".to_owned(), SEARCHBOT.to_owned()),
            ("path_rewrite".to_owned(), "/search".to_owned()),
            ("test_key".to_owned(), "*".to_owned()),
        ]
    );
    assert_eq!(r["lines"]["bad"], 3);
    let envoy = json(&ok(&root, &["report", ENVOY_SAMPLE, "--json"], b"").stdout);
    assert_eq!(envoy["totals"]["events"], 300);
    assert_eq!(envoy["lines"]["other_events"], serde_json::json!({"directory_fetch": 1}));
    assert_eq!(envoy["lines"]["bad"], 1, "Envoy's own line");
    assert_eq!(envoy["window"]["first_utc"], "2026-12-02T18:00:00Z");

    // The same block in the command's README and in the project README's operators' section.
    for readme in ["cli/README.md", "README.md"] {
        let readme_path = root.join(readme);
        let text = std::fs::read_to_string(&readme_path).unwrap();
        let block = format!("{README_BEGIN}\n```text\n{out}```\n{README_END}");
        let (Some(a), Some(b)) = (text.find(README_BEGIN), text.find(README_END)) else {
            panic!("{readme} has no {README_BEGIN} … {README_END} block");
        };
        let current = &text[a..b + README_END.len()];
        if bless() {
            std::fs::write(&readme_path, text.replace(current, &block)).unwrap();
        } else {
            assert_eq!(current, block, "{readme}'s sample output is stale (BOTAUTH_BLESS=1 rewrites it)");
        }
    }
}

// ---- the HTML page in a real browser --------------------------------------------------------

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|c| c.is_file()))
}

/// Debian's Chromium: on PATH, or installed now with apt-get (this fails loudly if not).
fn chromium() -> PathBuf {
    if let Some(p) = on_path("chromium") {
        return p;
    }
    eprintln!(
        "report test: `chromium` is not on PATH; installing Debian's package `chromium` with \
         `apt-get install -y chromium` (needs root and a Debian mirror)"
    );
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "chromium"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !install() {
        let _ = Command::new("apt-get").arg("update").status();
        assert!(
            install(),
            "report test: `apt-get install -y chromium` failed: install Debian's chromium to run this test"
        );
    }
    on_path("chromium").expect("report test: chromium installed but not on PATH")
}

struct Shot {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
    stderr: String,
}

fn screenshot(chromium: &Path, page: &Path, png: &Path, size: (u32, u32)) -> Shot {
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--enable-logging=stderr",
            "--v=0",
            &format!("--screenshot={}", png.display()),
            &format!("--window-size={},{}", size.0, size.1),
            &format!("file://{}", page.display()),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success() && png.exists(), "chromium failed:\n{stderr}");
    let mut decoder = png::Decoder::new(std::io::Cursor::new(std::fs::read(png).unwrap()));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("screenshot colour type {other:?}"),
    };
    let (width, height) = (info.width as usize, info.height as usize);
    let mut rgb = Vec::with_capacity(width * height * 3);
    for px in buf[..info.buffer_size()].chunks(channels) {
        rgb.extend_from_slice(&px[..3]);
    }
    Shot { width, height, rgb, stderr }
}

impl Shot {
    /// (variance of luminance, share of non-white pixels, distinct colours) in a region.
    fn region(&self, x: usize, y: usize, w: usize, h: usize) -> (f64, f64, usize) {
        let mut sum = 0.0;
        let mut sq = 0.0;
        let mut ink = 0usize;
        let mut colours = std::collections::HashSet::new();
        let mut n = 0usize;
        for yy in y..(y + h).min(self.height) {
            for xx in x..(x + w).min(self.width) {
                let i = (yy * self.width + xx) * 3;
                let (r, g, b) = (self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]);
                let l = 0.299 * f64::from(r) + 0.587 * f64::from(g) + 0.114 * f64::from(b);
                sum += l;
                sq += l * l;
                n += 1;
                if (r, g, b) != (255, 255, 255) {
                    ink += 1;
                }
                colours.insert((r >> 3, g >> 3, b >> 3));
            }
        }
        let n = n.max(1) as f64;
        (sq / n - (sum / n).powi(2), ink as f64 / n, colours.len())
    }
}

/// Console errors in Chromium's log (`--enable-logging=stderr`).
fn console_errors(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains("CONSOLE") || l.contains("Uncaught")).collect()
}

fn dump_dom(chromium: &Path, page: &Path) -> String {
    let out = Command::new(chromium)
        .args(["--headless", "--disable-gpu", "--no-sandbox", "--dump-dom", &format!("file://{}", page.display())])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `data-region="x,y,w,h"` of the element with `id`.
fn region_of(html: &str, id: &str) -> (usize, usize, usize, usize) {
    let at = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id}"));
    let rest = &html[at..];
    let start = rest.find("data-region=\"").unwrap() + "data-region=\"".len();
    let end = rest[start..].find('"').unwrap() + start;
    let v: Vec<usize> = rest[start..end].split(',').map(|n| n.parse().unwrap()).collect();
    (v[0], v[1], v[2], v[3])
}

#[test]
fn html_page_renders_its_charts_in_chromium() {
    let root = workspace();
    let s = Scratch::new();
    let page = s.0.join("report.html");
    ok(&root, &["report", SAMPLE, "--html", page.to_str().unwrap()], b"");
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing is loaded at view time.
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none'"));
    for attr in ["src=\"http", "href=\"http", "src='http", "href='http", "@import", "url("] {
        assert!(!html.contains(attr), "external reference {attr}");
    }
    assert_eq!(html.matches("<svg").count(), 3, "three inline SVG charts");

    let chromium = chromium();
    let png = s.0.join("report.png");
    let shot = screenshot(&chromium, &page, &png, (1000, 1700));
    if let Some(dir) = std::env::var_os("BOTAUTH_REPORT_SCREENSHOT") {
        std::fs::copy(&png, Path::new(&dir)).unwrap();
    }
    assert_eq!(console_errors(&shot.stderr), Vec::<&str>::new(), "console errors");
    for id in ["chart-series", "chart-agents", "chart-latency"] {
        let (x, y, w, h) = region_of(&html, id);
        // Below the title (28 px + margin): the chart itself.
        let (var, ink, colours) = shot.region(x, y + 40, w, h - 40);
        assert!(
            var > 100.0 && ink > 0.03 && colours > 8,
            "#{id} looks blank: variance {var:.1}, ink {ink:.3}, {colours} colours"
        );
    }
    // The page around the charts is blank where nothing is drawn (the layout is as fixed).
    let (var, _, _) = shot.region(985, 200, 15, 1000);
    assert!(var < 1.0, "the right margin should be empty: {var}");
    // The readiness table is on the page, and no script error was recorded in the DOM.
    let dom = dump_dom(&chromium, &page);
    assert!(dom.contains("data-errors=\"0\""), "errors recorded: {}", &dom[..200.min(dom.len())]);
    assert!(dom.contains("id=\"readiness\"") && dom.contains(SKEWED));

    // The checks catch a broken page: an uncaught error is logged and recorded.
    let broken = s.0.join("broken.html");
    std::fs::write(&broken, html.replace("</body>", "<script>undefinedFunction();</script></body>")).unwrap();
    let bad = screenshot(&chromium, &broken, &s.0.join("broken.png"), (1000, 400));
    assert!(!console_errors(&bad.stderr).is_empty(), "an uncaught error must show:\n{}", bad.stderr);
    assert!(dump_dom(&chromium, &broken).contains("data-errors=\"1\""));
}
