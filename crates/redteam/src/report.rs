//! Campaign reports: attack success rate (ASR) per category × strategy with bootstrap 95% intervals,
//! per-risk and per-strategy tables, judge agreement (with Cohen's kappa), the top successful attacks
//! with their transcripts, and the difference from a previous run's JSON. Rendered as JSON, as HTML
//! with an inline-SVG heat map and bar chart, and as JSONL of every attempt for other tools.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    attack::{Attack, Turn},
    judge::{Agreement, agreement},
    runner::AttemptResult,
    store::{AttemptRow, Counts},
};

/// A success rate with its bootstrap interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Attempts judged (errors and unfinished ones excluded).
    pub n: u64,
    pub successes: u64,
    /// successes / n (0 when n is 0).
    pub rate: f64,
    /// Bootstrap 95% interval.
    pub lo: f64,
    pub hi: f64,
}

/// One row of a breakdown table (or a matrix cell, with `key` = `category × strategy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub key: String,
    #[serde(flatten)]
    pub rate: Rate,
}

/// A successful attack worth reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub id: String,
    pub risk: String,
    pub category: String,
    pub strategy: String,
    pub goal: String,
    /// The conversation as it happened.
    pub transcript: Vec<Turn>,
    /// Each judge's verdict (`judge: reason`).
    pub verdicts: BTreeMap<String, String>,
}

/// Change against a previous run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffRow {
    pub key: String,
    pub before: Option<f64>,
    pub after: Option<f64>,
    /// after − before, when both exist.
    pub delta: Option<f64>,
    /// Whether the intervals do not overlap (a change beyond resampling noise).
    pub significant: bool,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub campaign: String,
    pub target: String,
    pub counts: Counts,
    /// Overall ASR.
    pub asr: Rate,
    pub categories: Vec<String>,
    pub strategies: Vec<String>,
    /// Category × strategy cells, row-major over `categories` then `strategies`.
    pub matrix: Vec<Row>,
    pub by_category: Vec<Row>,
    pub by_strategy: Vec<Row>,
    pub by_risk: Vec<Row>,
    pub by_lang: Vec<Row>,
    /// Every pair of judges.
    pub agreement: Vec<Agreement>,
    /// Attempts the judges disagreed on.
    pub disagreements: u64,
    /// The top successful attacks.
    pub findings: Vec<Finding>,
    /// Against the previous run, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<Diff>,
}

/// The difference from a previous report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diff {
    pub previous: String,
    pub overall: DiffRow,
    pub by_category: Vec<DiffRow>,
    pub by_strategy: Vec<DiffRow>,
}

/// Bootstrap resamples per interval.
const ROUNDS: usize = 1000;

/// The rate of `successes` out of `n` with a percentile-bootstrap 95% interval (resampling the n
/// 0/1 outcomes `ROUNDS` times with `seed`).
pub fn rate(successes: u64, n: u64, seed: u64) -> Rate {
    if n == 0 {
        return Rate { n, successes, rate: 0.0, lo: 0.0, hi: 0.0 };
    }
    let p = successes as f64 / n as f64;
    if successes == 0 || successes == n {
        return Rate { n, successes, rate: p, lo: p, hi: p };
    }
    let mut rng = StdRng::seed_from_u64(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ successes);
    let mut means: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            // Resampling n 0/1 outcomes draws Binomial(n, p) successes: exactly for small n; by a
            // Poisson draw of the rarer outcome when it is rare (a normal curve would go negative);
            // by the normal approximation (Box-Muller) otherwise.
            let nf = n as f64;
            let var = nf * p * (1.0 - p);
            let hits = if n <= 400 {
                (0..n).filter(|_| rng.random::<f64>() < p).count() as f64
            } else if var < 25.0 {
                let rare = p.min(1.0 - p);
                let k = poisson(&mut rng, nf * rare).min(nf);
                if rare == p { k } else { nf - k }
            } else {
                let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (nf * p + z * var.sqrt()).round().clamp(0.0, nf) + 0.0
            };
            hits / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (ROUNDS - 1) as f64).round() as usize).min(ROUNDS - 1)];
    Rate { n, successes, rate: p, lo: at(0.025), hi: at(0.975) }
}

/// A Poisson(`lambda`) draw by Knuth's product of uniforms (used for `lambda` below about 30).
fn poisson(rng: &mut StdRng, lambda: f64) -> f64 {
    let limit = (-lambda).exp();
    let mut k = 0.0;
    let mut product = rng.random::<f64>();
    while product > limit {
        k += 1.0;
        product *= rng.random::<f64>();
    }
    k
}

/// Parses an attempt's stored result (absent or unreadable: empty).
pub fn result_of(row: &AttemptRow) -> AttemptResult {
    row.result.as_deref().and_then(|r| serde_json::from_str(r).ok()).unwrap_or_default()
}

/// Parses an attempt's planned attack.
pub fn attack_of(row: &AttemptRow) -> Option<Attack> {
    serde_json::from_str(&row.attack).ok()
}

fn breakdown(rows: &[&AttemptRow], key: impl Fn(&AttemptRow) -> String, seed: u64) -> Vec<Row> {
    let mut groups: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for r in rows {
        let g = groups.entry(key(r)).or_default();
        g.0 += 1;
        g.1 += u64::from(r.success == Some(true));
    }
    groups
        .into_iter()
        .map(|(k, (n, s))| Row {
            rate: rate(s, n, seed ^ crate::campaign::fnv1a(&[k.as_bytes()])),
            key: k,
        })
        .collect()
}

/// Builds the report from a campaign's attempts; `top` successful attacks are kept with transcripts.
pub fn build(
    campaign: &str,
    target: &str,
    counts: Counts,
    attempts: &[AttemptRow],
    seed: u64,
    top: usize,
) -> Report {
    let judged: Vec<&AttemptRow> = attempts.iter().filter(|r| r.status == "done").collect();
    let successes = judged.iter().filter(|r| r.success == Some(true)).count() as u64;
    let asr = rate(successes, judged.len() as u64, seed);
    let by_category = breakdown(&judged, |r| r.category.clone(), seed);
    let by_strategy = breakdown(&judged, |r| r.strategy.clone(), seed);
    let by_risk = breakdown(&judged, |r| r.risk.clone(), seed);
    let by_lang = breakdown(&judged, |r| r.lang.clone(), seed);
    let categories: Vec<String> = by_category.iter().map(|r| r.key.clone()).collect();
    let strategies: Vec<String> = by_strategy.iter().map(|r| r.key.clone()).collect();
    let cells: BTreeMap<String, Row> =
        breakdown(&judged, |r| cell_key(&r.category, &r.strategy), seed)
            .into_iter()
            .map(|row| (row.key.clone(), row))
            .collect();
    let mut matrix = Vec::new();
    for c in &categories {
        for s in &strategies {
            let key = cell_key(c, s);
            matrix.push(cells.get(&key).cloned().unwrap_or(Row { key, rate: rate(0, 0, seed) }));
        }
    }
    let mut verdict_maps = Vec::new();
    let mut disagreements = 0;
    let mut findings = Vec::new();
    for r in &judged {
        let result = result_of(r);
        if let Some(j) = &result.judged {
            let map: BTreeMap<String, bool> =
                j.verdicts.iter().map(|(k, v)| (k.clone(), v.success)).collect();
            if map.values().any(|v| *v) && map.values().any(|v| !*v) {
                disagreements += 1;
            }
            verdict_maps.push(map);
        }
        if r.success == Some(true) && findings.len() < top {
            let goal = attack_of(r).map(|a| a.goal).unwrap_or_default();
            let transcript =
                result.reply.as_ref().map(|x| x.transcript.clone()).unwrap_or_default();
            let verdicts = result
                .judged
                .as_ref()
                .map(|j| j.verdicts.iter().map(|(k, v)| (k.clone(), v.reason.clone())).collect())
                .unwrap_or_default();
            findings.push(Finding {
                id: r.id.clone(),
                risk: r.risk.clone(),
                category: r.category.clone(),
                strategy: r.strategy.clone(),
                goal,
                transcript,
                verdicts,
            });
        }
    }
    Report {
        campaign: campaign.to_owned(),
        target: target.to_owned(),
        counts,
        asr,
        categories,
        strategies,
        matrix,
        by_category,
        by_strategy,
        by_risk,
        by_lang,
        agreement: agreement(&verdict_maps),
        disagreements,
        findings,
        diff: None,
    }
}

fn cell_key(category: &str, strategy: &str) -> String {
    format!("{category} × {strategy}")
}

fn diff_rows(before: &[Row], after: &[Row]) -> Vec<DiffRow> {
    let b: BTreeMap<&str, &Rate> = before.iter().map(|r| (r.key.as_str(), &r.rate)).collect();
    let a: BTreeMap<&str, &Rate> = after.iter().map(|r| (r.key.as_str(), &r.rate)).collect();
    let mut keys: Vec<&str> = b.keys().chain(a.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter().map(|k| diff_row(k, b.get(k).copied(), a.get(k).copied())).collect()
}

fn diff_row(key: &str, before: Option<&Rate>, after: Option<&Rate>) -> DiffRow {
    let significant = match (before, after) {
        (Some(b), Some(a)) => a.lo > b.hi || a.hi < b.lo,
        _ => false,
    };
    DiffRow {
        key: key.to_owned(),
        before: before.map(|r| r.rate),
        after: after.map(|r| r.rate),
        delta: before.zip(after).map(|(b, a)| a.rate - b.rate),
        significant,
    }
}

impl Report {
    /// Adds the comparison with `previous` (a report of an earlier run).
    pub fn compare(&mut self, previous: &Report) {
        self.diff = Some(Diff {
            previous: previous.campaign.clone(),
            overall: diff_row("overall", Some(&previous.asr), Some(&self.asr)),
            by_category: diff_rows(&previous.by_category, &self.by_category),
            by_strategy: diff_rows(&previous.by_strategy, &self.by_strategy),
        });
    }
}

/// One JSON line per attempt: the row with its attack and result parsed.
pub fn attempt_line(row: &AttemptRow) -> serde_json::Value {
    let attack: serde_json::Value = serde_json::from_str(&row.attack).unwrap_or_default();
    let result: serde_json::Value =
        row.result.as_deref().and_then(|r| serde_json::from_str(r).ok()).unwrap_or_default();
    json!({"id": row.id, "idx": row.idx, "risk": row.risk, "category": row.category,
        "strategy": row.strategy, "lang": row.lang, "status": row.status, "claims": row.claims,
        "success": row.success, "tokens": row.tokens, "attack": attack, "result": result})
}

/// One JSON line per attempt on which the judges disagree, for human review: the goal, the last
/// prompt, the answer and every verdict, with an empty `label` to fill in.
pub fn disagreement_lines(attempts: &[AttemptRow]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for row in attempts.iter().filter(|r| r.status == "done") {
        let result = result_of(row);
        let Some(judged) = &result.judged else { continue };
        let yes = judged.verdicts.values().filter(|v| v.success).count();
        if yes == 0 || yes == judged.verdicts.len() {
            continue;
        }
        let attack = result.final_attack.clone().or_else(|| attack_of(row));
        out.push(json!({"id": row.id, "risk": row.risk, "strategy": row.strategy,
            "goal": attack.as_ref().map(|a| a.goal.clone()),
            "prompt": attack.as_ref().map(|a| a.last_user().to_owned()),
            "response": result.reply.as_ref().map(|r| r.text.clone()),
            "verdicts": judged.verdicts, "combined": judged.success, "label": null}));
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// White (0%) to red (100%).
fn heat(rate: f64) -> String {
    let r = rate.clamp(0.0, 1.0);
    let g = (255.0 * (1.0 - r * 0.85)) as u8;
    format!("rgb(255,{g},{g})")
}

fn heat_map(report: &Report) -> String {
    let (cell_w, cell_h, left, top) = (70usize, 24usize, 70usize, 110usize);
    let width = left + cell_w * report.strategies.len().max(1) + 10;
    let height = top + cell_h * report.categories.len().max(1) + 10;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-size=\"11\">"
    );
    for (j, s) in report.strategies.iter().enumerate() {
        let x = left + j * cell_w + cell_w / 2;
        svg.push_str(&format!(
            "<text x=\"{x}\" y=\"{}\" transform=\"rotate(-45 {x} {})\">{}</text>",
            top - 6,
            top - 6,
            esc(s)
        ));
    }
    for (i, c) in report.categories.iter().enumerate() {
        let y = top + i * cell_h;
        svg.push_str(&format!("<text x=\"4\" y=\"{}\">{}</text>", y + 16, esc(c)));
        for j in 0..report.strategies.len() {
            let Some(cell) = report.matrix.get(i * report.strategies.len() + j) else { continue };
            let x = left + j * cell_w;
            let (fill, label) = if cell.rate.n == 0 {
                ("#eee".to_owned(), "–".to_owned())
            } else {
                (heat(cell.rate.rate), pct(cell.rate.rate))
            };
            svg.push_str(&format!(
                "<rect x=\"{x}\" y=\"{y}\" width=\"{cell_w}\" height=\"{cell_h}\" fill=\"{fill}\" stroke=\"#fff\">\
                 <title>{}: {} of {} ({} – {})</title></rect><text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
                esc(&cell.key),
                cell.rate.successes,
                cell.rate.n,
                pct(cell.rate.lo),
                pct(cell.rate.hi),
                x + cell_w / 2,
                y + 16
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

fn bars(rows: &[Row]) -> String {
    let (bar_h, left, scale) = (18usize, 180usize, 400.0);
    let height = rows.len().max(1) * bar_h + 20;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-size=\"11\">",
        left + 460
    );
    for (i, row) in rows.iter().enumerate() {
        let y = i * bar_h;
        let w = row.rate.rate * scale;
        let (lo, hi) = (left as f64 + row.rate.lo * scale, left as f64 + row.rate.hi * scale);
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"{left}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\" fill=\"#c0392b\"/>\
             <line x1=\"{lo:.1}\" x2=\"{hi:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"#000\"/><text x=\"{:.1}\" y=\"{}\">{} (n={})</text>",
            left - 4,
            y + 13,
            esc(&row.key),
            y + 3,
            bar_h - 6,
            y + bar_h / 2,
            y + bar_h / 2,
            left as f64 + scale.max(hi - left as f64) + 6.0,
            y + 13,
            pct(row.rate.rate),
            row.rate.n
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn table(title: &str, rows: &[Row]) -> String {
    let mut h = format!(
        "<h2>{}</h2><table><tr><th>{}</th><th>n</th><th>successes</th><th>ASR</th><th>95% CI</th></tr>",
        esc(title),
        esc(title)
    );
    for r in rows {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} – {}</td></tr>",
            esc(&r.key),
            r.rate.n,
            r.rate.successes,
            pct(r.rate.rate),
            pct(r.rate.lo),
            pct(r.rate.hi)
        ));
    }
    h.push_str("</table>");
    h
}

fn diff_table(title: &str, rows: &[DiffRow]) -> String {
    let opt = |x: Option<f64>| x.map_or_else(|| "–".to_owned(), pct);
    let mut h = format!(
        "<h3>{}</h3><table><tr><th></th><th>before</th><th>after</th><th>Δ</th><th>beyond noise</th></tr>",
        esc(title)
    );
    for r in rows {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.key),
            opt(r.before),
            opt(r.after),
            r.delta.map_or_else(|| "–".to_owned(), |d| format!("{:+.1} pt", d * 100.0)),
            if r.significant { "yes" } else { "" }
        ));
    }
    h.push_str("</table>");
    h
}

/// The report as a self-contained HTML page.
pub fn html(report: &Report) -> String {
    let mut h = String::from(
        "<!doctype html><html lang=\"zh\"><meta charset=\"utf-8\"><title>蚁鉴 red-team report</title><style>\
         body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}\
         td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}pre{white-space:pre-wrap;background:#f6f6f6;\
         padding:6px}.turn{margin:4px 0}</style>",
    );
    let c = &report.counts;
    h.push_str(&format!(
        "<h1>蚁鉴 campaign <code>{}</code></h1><p>Target: <code>{}</code>. Planned {}, judged {}, target errors {}, \
         unfinished {}, resent after a lost claim {}.</p><p><b>Attack success rate: {}</b> ({} of {}; bootstrap 95% CI \
         {} – {}). Tokens: {}.</p>",
        esc(&report.campaign),
        esc(&report.target),
        c.planned,
        c.done,
        c.error,
        c.pending + c.claimed,
        c.reclaims,
        pct(report.asr.rate),
        report.asr.successes,
        report.asr.n,
        pct(report.asr.lo),
        pct(report.asr.hi),
        c.tokens
    ));
    h.push_str("<h2>ASR by category × strategy</h2>");
    h.push_str(&heat_map(report));
    h.push_str("<h2>ASR by strategy (bars: rate; whiskers: 95% CI)</h2>");
    h.push_str(&bars(&report.by_strategy));
    h.push_str(&table("category", &report.by_category));
    h.push_str(&table("strategy", &report.by_strategy));
    h.push_str(&table("language", &report.by_lang));
    h.push_str(&table("risk", &report.by_risk));
    h.push_str(&format!(
        "<h2>Judge agreement</h2><p>{} attempts with disagreeing judges (exported for review with \
         <code>finllm redteam report --disagreements</code>).</p><table><tr><th>judges</th><th>n</th>\
         <th>agreement</th><th>Cohen's κ</th></tr>",
        report.disagreements
    ));
    for a in &report.agreement {
        h.push_str(&format!(
            "<tr><td>{} / {}</td><td>{}</td><td>{}</td><td>{:.3}</td></tr>",
            esc(&a.a),
            esc(&a.b),
            a.n,
            pct(a.agreement),
            a.kappa
        ));
    }
    h.push_str("</table>");
    if let Some(d) = &report.diff {
        h.push_str(&format!("<h2>Against the previous run <code>{}</code></h2>", esc(&d.previous)));
        h.push_str(&diff_table("overall", std::slice::from_ref(&d.overall)));
        h.push_str(&diff_table("by category", &d.by_category));
        h.push_str(&diff_table("by strategy", &d.by_strategy));
    }
    h.push_str("<h2>Top successful attacks</h2>");
    for f in &report.findings {
        h.push_str(&format!(
            "<h3><code>{}</code></h3><p>risk {} · category {} · strategy {}<br>goal: {}</p>",
            esc(&f.id),
            esc(&f.risk),
            esc(&f.category),
            esc(&f.strategy),
            esc(&f.goal)
        ));
        for t in &f.transcript {
            h.push_str(&format!(
                "<div class=\"turn\"><b>{}</b><pre>{}</pre></div>",
                esc(&t.role),
                esc(&t.content)
            ));
        }
        let verdicts: Vec<String> =
            f.verdicts.iter().map(|(k, v)| format!("{}: {}", esc(k), esc(v))).collect();
        h.push_str(&format!("<p>judges: {}</p>", verdicts.join("; ")));
    }
    h.push_str("</html>\n");
    h
}
