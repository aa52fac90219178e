//! `--html FILE`: one self-contained page (no network at view time: inline SVG and CSS, a
//! Content-Security-Policy that allows nothing else). Charts are drawn by `plotters` with
//! its SVG backend. Each chart sits in a box at a fixed place ([`REGIONS`]), so a
//! screenshot can be checked region by region.

use std::fmt::Write as _;

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::model::{ratio, Report};
use super::stats::{Stats, NONE, OTHER};
use crate::dates::utc;

/// Chart boxes: (id, title, left, top, width, height) in CSS px from the page's top left.
pub const REGIONS: [(&str, &str, u32, u32, u32, u32); 3] = [
    ("chart-series", "Verdicts over time, stacked by reason", 20, 170, 960, 380),
    ("chart-agents", "Verified vs rejected per agent", 20, 570, 960, 380),
    ("chart-latency", "Verify time distribution", 20, 970, 960, 320),
];
/// Where the tables start (after the charts), px.
const FLOW_TOP: u32 = 1310;
/// Agents drawn in the per-agent chart.
const MAX_AGENT_BARS: usize = 12;
/// Reasons drawn as their own layer in the series (the rest is "other rejected").
const MAX_LAYERS: usize = 8;

const GREEN: RGBColor = RGBColor(46, 160, 67);
const GREY: RGBColor = RGBColor(160, 160, 160);
const RED: RGBColor = RGBColor(207, 34, 46);
const BLUE: RGBColor = RGBColor(9, 105, 218);
/// The layer of reasons past [`MAX_LAYERS`].
const OTHER_REJECTED: RGBColor = RGBColor(250, 160, 160);
/// Reason layers.
const PALETTE: [RGBColor; MAX_LAYERS] = [
    RGBColor(207, 34, 46),
    RGBColor(191, 135, 0),
    RGBColor(130, 80, 223),
    RGBColor(219, 109, 40),
    RGBColor(191, 57, 137),
    RGBColor(26, 127, 140),
    RGBColor(110, 84, 52),
    RGBColor(87, 96, 106),
];

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn pct(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

/// A string cut to `n` characters with `…`.
fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut o: String = s.chars().take(n.saturating_sub(1)).collect();
        o.push('…');
        o
    }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// An SVG document of `width` × `height` drawn by `draw`.
fn svg(width: u32, height: u32, draw: impl FnOnce(&Area<'_>) -> Result<()>) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("chart: {e}")
}

/// The page.
pub fn page(r: &Report, stats: &Stats) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\" data-errors=\"0\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; \
         script-src 'unsafe-inline'; img-src data:\">\n<title>botauth report</title>\n\
         <script>window.addEventListener('error',function(){{var h=document.documentElement;\
         h.dataset.errors=String(Number(h.dataset.errors)+1);}});</script>\n<style>{}</style></head><body>\n",
        STYLE
    );
    header(&mut o, r);
    for (id, title, left, top, width, height) in REGIONS {
        let chart_h = height - 40;
        let svg = svg(width, chart_h, |root| match id {
            "chart-series" => series_chart(r, root, width),
            "chart-agents" => agents_chart(stats, root, width),
            _ => latency_chart(r, root, width),
        });
        let body = svg.unwrap_or_else(|e| format!("<p class=\"note\">{}</p>", esc(&format!("{e:#}"))));
        let _ = writeln!(
            o,
            "<section class=\"chart\" id=\"{id}\" data-region=\"{left},{top},{width},{height}\" \
             style=\"left:{left}px;top:{top}px;width:{width}px;height:{height}px\">\
             <h2>{}</h2>{body}</section>",
            esc(&chart_title(title, r))
        );
    }
    let _ = writeln!(o, "<main style=\"top:{FLOW_TOP}px\">");
    readiness(&mut o, r);
    diagnoses(&mut o, r);
    notes(&mut o, r);
    o.push_str("</main>\n</body></html>\n");
    o
}

const STYLE: &str = "body{margin:0;font:14px/1.4 sans-serif;color:#1f2328;background:#fff;width:1000px;position:relative}\
header{position:absolute;left:20px;top:0;width:960px;height:160px;overflow:hidden}\
h1{font-size:22px;margin:14px 0 6px}h2{font-size:16px;margin:0 0 6px;height:28px}\
.chart{position:absolute;overflow:hidden}main{position:absolute;left:20px;width:960px}\
.cards{display:flex;gap:10px}.card{border:1px solid #d0d7de;border-radius:6px;padding:6px 12px;min-width:120px}\
.card b{display:block;font-size:20px}.ok{color:#2ea043}.bad{color:#cf222e}.muted{color:#57606a}\
table{border-collapse:collapse;width:100%;margin:6px 0 18px}th,td{border-bottom:1px solid #d0d7de;padding:4px 6px;text-align:left}\
td.n,th.n{text-align:right}td.share{white-space:nowrap}.bar{display:inline-block;height:10px;background:#cf222e;vertical-align:middle}\
.diag{border-left:4px solid #bf8700;padding:4px 10px;margin:6px 0}.diag.error{border-color:#cf222e}\
.note{color:#57606a}";

fn chart_title(title: &str, r: &Report) -> String {
    if title.starts_with("Verdicts") {
        let per = if r.series.bucket_secs == 60 {
            "per minute".to_owned()
        } else {
            format!("per {} s", r.series.bucket_secs)
        };
        format!("{title} ({per}, UTC)")
    } else if title.starts_with("Verify") {
        let v = &r.verify_us;
        let f = |x: Option<u64>| x.map_or_else(|| "-".to_owned(), |x| x.to_string());
        format!("{title} (µs, log scale; p50 {} µs, p99 {} µs)", f(v.p50), f(v.p99))
    } else {
        title.to_owned()
    }
}

fn header(o: &mut String, r: &Report) {
    let t = &r.totals;
    let share = |n: u64| pct(ratio(n, t.events));
    let span = match (&r.window.first_utc, &r.window.last_utc) {
        (Some(a), Some(b)) => format!("{a} .. {b}"),
        _ => "time not logged".to_owned(),
    };
    let inputs: Vec<String> = r.inputs.iter().map(|i| esc(&i.name)).collect();
    let _ = writeln!(
        o,
        "<header><h1>botauth report</h1><div class=\"muted\">{} · {} lines, {} events, {} bad lines · {}</div>\
         <div class=\"cards\" style=\"margin-top:10px\">\
         <div class=\"card\">events<b>{}</b></div>\
         <div class=\"card ok\">verified<b>{} <small>{}</small></b></div>\
         <div class=\"card bad\">rejected<b>{} <small>{}</small></b></div>\
         <div class=\"card muted\">unsigned<b>{} <small>{}</small></b></div>\
         <div class=\"card\">would block<b>{} <small>{}</small></b></div>\
         <div class=\"card\">diagnoses<b>{}</b></div></div></header>",
        inputs.join(", "),
        r.lines.total,
        r.lines.events,
        r.lines.bad,
        esc(&span),
        t.events,
        t.verified,
        share(t.verified),
        t.rejected,
        share(t.rejected),
        t.unsigned,
        share(t.unsigned),
        r.readiness.would_block,
        pct(r.readiness.share),
        r.diagnoses.len()
    );
}

/// A legend on the right-hand area: a swatch and a name per layer.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    items: &[(String, RGBColor)],
) -> Result<()> {
    for (i, (name, color)) in items.iter().enumerate() {
        let y = 10 + 20 * i32::try_from(i).unwrap_or(0);
        area.draw(&Rectangle::new([(6, y), (18, y + 12)], color.filled())).map_err(err)?;
        area.draw(&Text::new(short(name, 26), (24, y), ("sans-serif", 13).into_font())).map_err(err)?;
    }
    Ok(())
}

/// A unix minute as `HH:MM` (or `MM-DD HH:MM` over a day).
fn hhmm(minute: u64, long_span: bool) -> String {
    let s = utc(minute * 60);
    let part = if long_span { s.get(5..16) } else { s.get(11..16) };
    part.unwrap_or_default().replace('T', " ")
}

/// Verdicts per bucket, stacked: verified, unsigned, then the top rejection reasons.
fn series_chart(r: &Report, root: &Area<'_>, width: u32) -> Result<()> {
    {
        let (plot, side) = root.split_horizontally(width - 200);
        let s = &r.series;
        let mut totals: Vec<(&str, u64)> = Vec::new();
        for b in &s.buckets {
            for (code, c) in &b.rejected {
                match totals.iter_mut().find(|(k, _)| k == code) {
                    Some((_, n)) => *n += c,
                    None => totals.push((*code, *c)),
                }
            }
        }
        totals.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let layers: Vec<&str> = totals.iter().take(MAX_LAYERS).map(|(k, _)| *k).collect();
        let has_other = totals.len() > MAX_LAYERS;
        let (Some(first), Some(last)) = (s.buckets.first(), s.buckets.last()) else {
            plot.draw(&Text::new("no events with a time", (20, 20), ("sans-serif", 16).into_font())).map_err(err)?;
            return Ok(());
        };
        // x in unix minutes: label steps (10, 20, 30 min) then fall on the hour.
        let x0 = first.start / 60;
        let x1 = (last.start + s.bucket_secs) / 60;
        let ymax = s.buckets.iter().map(|b| b.verified + b.unsigned + b.rejected.values().sum::<u64>()).max();
        let ymax = ymax.unwrap_or(1).max(1);
        let long_span = x1 - x0 > 1440;
        let mut chart = ChartBuilder::on(&plot)
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, 0u64..(ymax + ymax / 10 + 1))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&|t| hhmm(*t, long_span))
            .y_desc("events")
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        let mut legend_items = vec![("verified".to_owned(), GREEN), ("unsigned".to_owned(), GREY)];
        for (i, code) in layers.iter().enumerate() {
            legend_items.push(((*code).to_owned(), PALETTE.get(i).copied().unwrap_or(RED)));
        }
        if has_other {
            legend_items.push(("other rejected".to_owned(), OTHER_REJECTED));
        }
        let mut rects = Vec::new();
        for b in &s.buckets {
            let xa = b.start / 60;
            let xb = (b.start + s.bucket_secs) / 60;
            let mut base = 0u64;
            let mut stack = |n: u64, color: RGBColor, rects: &mut Vec<Rectangle<(u64, u64)>>| {
                if n > 0 {
                    let mut rect = Rectangle::new([(xa, base), (xb, base + n)], color.filled());
                    rect.set_margin(0, 0, 0, 1);
                    rects.push(rect);
                    base += n;
                }
            };
            stack(b.verified, GREEN, &mut rects);
            stack(b.unsigned, GREY, &mut rects);
            let other: u64 = b.rejected.iter().filter(|(code, _)| !layers.contains(code)).map(|(_, c)| c).sum();
            for (i, code) in layers.iter().enumerate() {
                let c = b.rejected.get(*code).copied().unwrap_or(0);
                stack(c, PALETTE.get(i).copied().unwrap_or(RED), &mut rects);
            }
            stack(other, OTHER_REJECTED, &mut rects);
        }
        chart.draw_series(rects).map_err(err)?;
        legend(&side, &legend_items)?;
    }
    Ok(())
}

/// Horizontal bars per agent: verified, rejected, unsigned.
fn agents_chart(stats: &Stats, root: &Area<'_>, width: u32) -> Result<()> {
    let mut rows: Vec<(&str, u64, u64, u64)> = stats
        .agents
        .iter()
        .map(|(k, g)| (k, g.counts.verified, g.counts.rejected, g.counts.unsigned))
        .filter(|(k, v, rj, _)| *k != NONE || v + rj > 0)
        .collect();
    rows.sort_by(|a, b| (a.0 == OTHER).cmp(&(b.0 == OTHER)).then((b.1 + b.2).cmp(&(a.1 + a.2))).then(a.0.cmp(b.0)));
    rows.truncate(MAX_AGENT_BARS);
    {
        let (plot, side) = root.split_horizontally(width - 200);
        if rows.is_empty() {
            plot.draw(&Text::new("no signed requests", (20, 20), ("sans-serif", 16).into_font())).map_err(err)?;
            return Ok(());
        }
        let n = i32::try_from(rows.len()).unwrap_or(1);
        let xmax = rows.iter().map(|(_, v, rj, u)| v + rj + u).max().unwrap_or(1).max(1);
        let names: Vec<String> = rows.iter().map(|(k, ..)| short(k, 34)).collect();
        let mut chart = ChartBuilder::on(&plot)
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(250)
            .build_cartesian_2d(0u64..(xmax + xmax / 10 + 1), (0..(n - 1).max(0)).into_segmented())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(rows.len())
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                    // The busiest agent on top.
                    usize::try_from(n - 1 - *i).ok().and_then(|i| names.get(i)).cloned().unwrap_or_default()
                }
                SegmentValue::Last => String::new(),
            })
            .x_desc("requests")
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        let mut rects = Vec::new();
        for (i, (_, v, rj, u)) in rows.iter().enumerate() {
            let i = n - 1 - i32::try_from(i).unwrap_or(0);
            let mut base = 0u64;
            for (count, color) in [(*v, GREEN), (*rj, RED), (*u, GREY)] {
                if count > 0 {
                    let mut rect = Rectangle::new(
                        [(base, SegmentValue::Exact(i)), (base + count, SegmentValue::Exact(i + 1))],
                        color.filled(),
                    );
                    rect.set_margin(4, 4, 0, 0);
                    rects.push(rect);
                    base += count;
                }
            }
        }
        chart.draw_series(rects).map_err(err)?;
        legend(&side, &[("verified".to_owned(), GREEN), ("rejected".to_owned(), RED), ("unsigned".to_owned(), GREY)])?;
    }
    Ok(())
}

/// The verify-time histogram on a log axis, with p50 and p99 marked.
fn latency_chart(r: &Report, root: &Area<'_>, width: u32) -> Result<()> {
    {
        let (plot, side) = root.split_horizontally(width - 200);
        let h = &r.verify_us_histogram;
        let (Some(first), Some(last)) = (h.first(), h.last()) else {
            plot.draw(&Text::new("no verify times", (20, 20), ("sans-serif", 16).into_font())).map_err(err)?;
            return Ok(());
        };
        #[allow(clippy::cast_precision_loss)]
        let f = |v: u64| (v as f64).max(0.5);
        let x0 = f(first.lo) * 0.8;
        let x1 = f(last.hi) * 1.25;
        let ymax = h.iter().map(|b| b.count).max().unwrap_or(1).max(1);
        let mut chart = ChartBuilder::on(&plot)
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(56)
            .build_cartesian_2d((x0..x1).log_scale(), 0u64..(ymax + ymax / 10 + 1))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(10)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .x_desc("verify_us")
            .y_desc("events")
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(h.iter().map(|b| {
                let mut rect = Rectangle::new([(f(b.lo), 0), (f(b.hi), b.count)], BLUE.mix(0.8).filled());
                rect.set_margin(0, 0, 0, 1);
                rect
            }))
            .map_err(err)?;
        let mut marks = Vec::new();
        for (name, v, color) in [("p50", r.verify_us.p50, GREEN), ("p99", r.verify_us.p99, RED)] {
            if let Some(v) = v {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(f(v), 0), (f(v), ymax)],
                        color.stroke_width(2),
                    )))
                    .map_err(err)?;
                marks.push((format!("{name} {v} µs"), color));
            }
        }
        marks.insert(0, ("events per bucket".to_owned(), BLUE));
        legend(&side, &marks)?;
    }
    Ok(())
}

fn readiness(o: &mut String, r: &Report) {
    let rd = &r.readiness;
    let _ = write!(o, "<h2>Enforce readiness (monitor → enforce)</h2>");
    if rd.signed == 0 {
        o.push_str("<p class=\"note\">No signed requests logged in monitor mode.</p>");
        return;
    }
    let statuses = |m: &std::collections::BTreeMap<u16, u64>| {
        m.iter().map(|(s, c)| format!("{s}×{c}")).collect::<Vec<_>>().join(" ")
    };
    let _ = write!(
        o,
        "<p>Of {} signed requests logged in monitor mode{}, enforce mode would block <b>{}</b> ({}): {}.</p>",
        rd.signed,
        if rd.mode_not_logged > 0 { format!(" or without a mode ({})", rd.mode_not_logged) } else { String::new() },
        rd.would_block,
        pct(rd.share),
        esc(&statuses(&rd.by_status))
    );
    o.push_str(
        "<table id=\"readiness\"><tr><th>agent</th><th class=\"n\">signed</th><th class=\"n\">would block</th>\
         <th>share</th><th>status</th><th>why</th></tr>",
    );
    for a in &rd.agents {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let bar = (a.share.unwrap_or(0.0) * 80.0).round() as u32;
        let why: Vec<String> = a.why.iter().map(|w| format!("{} {}", w.code, w.count)).collect();
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"share\"><span class=\"bar\" \
             style=\"width:{bar}px\"></span> {}</td><td>{}</td><td>{}</td></tr>",
            esc(&a.agent),
            a.signed,
            a.would_block,
            pct(a.share),
            esc(&statuses(&a.by_status)),
            esc(&why.join(", "))
        );
    }
    o.push_str("</table>\n");
}

fn diagnoses(o: &mut String, r: &Report) {
    let _ = write!(o, "<h2>Diagnoses</h2>");
    if r.diagnoses.is_empty() {
        o.push_str("<p class=\"note\">None.</p>");
    }
    for d in &r.diagnoses {
        let _ = write!(
            o,
            "<div class=\"diag {}\"><b>{} {}</b> [{}]: {}<br>→ {}</div>",
            esc(d.severity),
            esc(d.severity),
            esc(d.rule),
            esc(&d.subject),
            esc(&d.finding),
            esc(&d.action)
        );
    }
}

fn notes(o: &mut String, r: &Report) {
    if r.reasons.is_empty() && r.not_computed.is_empty() {
        return;
    }
    if !r.reasons.is_empty() {
        o.push_str("<h2>Rejections by reason</h2><table><tr><th>reason</th><th class=\"n\">status</th><th class=\"n\">count</th><th class=\"n\">share</th></tr>");
        for x in &r.reasons {
            let _ = write!(
                o,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&x.code),
                x.status.map_or_else(|| "?".to_owned(), |s| s.to_string()),
                x.count,
                pct(x.share)
            );
        }
        o.push_str("</table>");
    }
    if !r.not_computed.is_empty() {
        o.push_str("<h2>Not computed</h2><ul>");
        for n in &r.not_computed {
            let _ = write!(o, "<li class=\"note\">{}</li>", esc(n));
        }
        o.push_str("</ul>");
    }
}
