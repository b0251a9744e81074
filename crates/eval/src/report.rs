//! Reports people read and machines check: JSON, Markdown and a self-contained HTML page with inline SVG
//! charts (per ability, per task), plus the paired comparison of two reports.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::{Deserialize, Serialize};

use crate::{
    EvalError,
    run::{Summary, TaskResult},
    stats,
};

/// A group's (ability's) headline score over all its samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupScore {
    /// Group name.
    pub group: String,
    /// Samples in the group.
    pub n: usize,
    /// Mean headline score with its bootstrap interval.
    pub score: Summary,
}

/// One model's evaluation over several tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Model id.
    pub model: String,
    /// Scoring paths used.
    pub scoring: String,
    /// Per-ability roll-ups (micro-averaged headline scores).
    pub groups: Vec<GroupScore>,
    /// All samples' headline scores, micro-averaged.
    pub overall: Option<Summary>,
    /// Per task.
    pub tasks: Vec<TaskResult>,
}

fn headline_values(t: &TaskResult) -> Vec<f64> {
    t.headline().map_or_else(Vec::new, |(m, _)| {
        t.samples.iter().filter_map(|s| s.scores.get(m).copied()).collect()
    })
}

fn summary(values: &[f64]) -> Summary {
    let (lo, hi) = stats::bootstrap_ci(values, 1000, 0);
    Summary { mean: stats::mean(values), lo, hi }
}

impl Report {
    /// Builds the report and its roll-ups.
    pub fn new(model: &str, scoring: &str, tasks: Vec<TaskResult>) -> Report {
        let mut by_group: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut all = Vec::new();
        for t in &tasks {
            let values = headline_values(t);
            all.extend_from_slice(&values);
            if let Some(g) = &t.group {
                by_group.entry(g.clone()).or_default().extend(values);
            }
        }
        let groups = by_group
            .into_iter()
            .map(|(group, v)| GroupScore { group, n: v.len(), score: summary(&v) })
            .collect();
        let overall = (!all.is_empty()).then(|| summary(&all));
        Report { model: model.to_owned(), scoring: scoring.to_owned(), groups, overall, tasks }
    }

    /// Pretty JSON, every sample included.
    pub fn to_json(&self) -> Result<String, EvalError> {
        serde_json::to_string_pretty(self).map_err(|e| EvalError::Invalid(e.to_string()))
    }

    /// Reads a report written by [`Report::to_json`].
    pub fn from_json(text: &str, name: &str) -> Result<Report, EvalError> {
        serde_json::from_str(text)
            .map_err(|e| EvalError::Invalid(format!("{name}: not an eval report: {e}")))
    }

    /// A Markdown table: task, group, n, headline metric with interval, unextractable rate.
    pub fn to_markdown(&self) -> String {
        let mut md = format!("# EVE report: {}\n\nScoring: {}\n\n", self.model, self.scoring);
        if let Some(o) = self.overall {
            let _ = writeln!(
                md,
                "Overall: **{:.1}** (95% CI {:.1}–{:.1})\n",
                o.mean * 100.0,
                o.lo * 100.0,
                o.hi * 100.0
            );
        }
        if !self.groups.is_empty() {
            md.push_str("| ability | n | score | 95% CI |\n|---|---:|---:|---|\n");
            for g in &self.groups {
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.1} | {:.1}–{:.1} |",
                    g.group,
                    g.n,
                    g.score.mean * 100.0,
                    g.score.lo * 100.0,
                    g.score.hi * 100.0
                );
            }
            md.push('\n');
        }
        md.push_str("| task | group | n | metric | score | 95% CI | other metrics | unextractable |\n|---|---|---:|---|---:|---|---|---:|\n");
        for t in &self.tasks {
            let (metric, s) = t.headline().map_or(("-", None), |(m, s)| (m, Some(s)));
            let mut others: Vec<String> = t
                .metric_names
                .iter()
                .skip(1)
                .filter_map(|m| t.metrics.get(m).map(|s| format!("{m} {:.1}", s.mean * 100.0)))
                .collect();
            if t.unsupported > 0 {
                // Not scored zero: the backend cannot take these samples (images to a text model).
                others.push(format!("unsupported by the backend: {}", t.unsupported));
            }
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                t.task,
                t.group.as_deref().unwrap_or("-"),
                t.samples.len(),
                metric,
                s.map_or("-".into(), |s| format!("{:.1}", s.mean * 100.0)),
                s.map_or("-".into(), |s| format!("{:.1}–{:.1}", s.lo * 100.0, s.hi * 100.0)),
                others.join(", "),
                t.unextractable_rate.map_or("-".into(), |r| format!("{:.1}%", r * 100.0)),
            );
        }
        md
    }

    /// A self-contained HTML page: bar charts with interval whiskers per ability and per task, then the
    /// Markdown table's content.
    pub fn to_html(&self) -> String {
        let mut html = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>EVE report: {m}</title>\
             <style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}\
             td,th{{border:1px solid #ccc;padding:3px 8px}}</style></head><body><h1>EVE report: {m}</h1><p>Scoring: {s}</p>",
            m = escape(&self.model),
            s = escape(&self.scoring)
        );
        if let Some(o) = self.overall {
            let _ = write!(
                html,
                "<p>Overall <b>{:.1}</b> (95% CI {:.1}–{:.1})</p>",
                o.mean * 100.0,
                o.lo * 100.0,
                o.hi * 100.0
            );
        }
        let groups: Vec<(String, Summary)> =
            self.groups.iter().map(|g| (g.group.clone(), g.score)).collect();
        if !groups.is_empty() {
            html.push_str("<h2>By ability</h2>");
            html.push_str(&bar_chart(&groups));
        }
        let tasks: Vec<(String, Summary)> = self
            .tasks
            .iter()
            .filter_map(|t| t.headline().map(|(m, s)| (format!("{} ({m})", t.task), s)))
            .collect();
        html.push_str("<h2>By task</h2>");
        html.push_str(&bar_chart(&tasks));
        html.push_str("<table><tr><th>task</th><th>group</th><th>n</th><th>metrics</th><th>unextractable</th><th>version</th></tr>");
        for t in &self.tasks {
            let metrics: Vec<String> = t
                .metric_names
                .iter()
                .filter_map(|m| {
                    t.metrics.get(m).map(|s| {
                        format!(
                            "{m} {:.1} [{:.1}, {:.1}]",
                            s.mean * 100.0,
                            s.lo * 100.0,
                            s.hi * 100.0
                        )
                    })
                })
                .collect();
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                escape(&t.task),
                escape(t.group.as_deref().unwrap_or("-")),
                t.samples.len(),
                escape(&metrics.join("; ")),
                t.unextractable_rate.map_or("-".into(), |r| format!("{:.1}%", r * 100.0)),
                t.version
            );
        }
        html.push_str("</table></body></html>\n");
        html
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Horizontal bars (0–100) with 95% interval whiskers.
fn bar_chart(rows: &[(String, Summary)]) -> String {
    let (label_w, bar_w, row_h) = (320.0, 600.0, 22.0);
    let height = rows.len() as f64 * row_h + 30.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-size=\"12\">",
        label_w + bar_w + 60.0
    );
    for tick in [0, 25, 50, 75, 100] {
        let x = label_w + bar_w * f64::from(tick) / 100.0;
        let _ = write!(
            svg,
            "<line x1=\"{x}\" y1=\"0\" x2=\"{x}\" y2=\"{}\" stroke=\"#eee\"/><text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{tick}</text>",
            height - 20.0,
            height - 6.0
        );
    }
    for (i, (label, s)) in rows.iter().enumerate() {
        let y = i as f64 * row_h + 4.0;
        let w = bar_w * s.mean.clamp(0.0, 1.0);
        let (lo, hi) =
            (label_w + bar_w * s.lo.clamp(0.0, 1.0), label_w + bar_w * s.hi.clamp(0.0, 1.0));
        let mid = y + row_h / 2.0 - 2.0;
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"{label_w}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"#4a7ab7\"><title>{:.1}</title></rect>\
             <line x1=\"{lo:.1}\" y1=\"{mid}\" x2=\"{hi:.1}\" y2=\"{mid}\" stroke=\"#222\"/><text x=\"{}\" y=\"{}\">{:.1}</text>",
            label_w - 6.0,
            mid + 4.0,
            escape(label),
            row_h - 6.0,
            s.mean * 100.0,
            label_w + w + 4.0,
            mid - 2.0,
            s.mean * 100.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One task compared between two reports on the samples both scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskComparison {
    /// Task name.
    pub task: String,
    /// Headline metric compared.
    pub metric: String,
    /// Score of the first report on the shared samples.
    pub a: f64,
    /// Score of the second.
    pub b: f64,
    /// The paired test.
    pub paired: stats::Paired,
    /// Samples whose score changed: (id, score in a, score in b), the run-to-run diff.
    #[serde(default)]
    pub changed: Vec<(String, f64, f64)>,
}

/// Compares `b` against `a` task by task (matched by task name and sample id), with the same task
/// version required so that both answered the same questions.
pub fn compare(a: &Report, b: &Report) -> Result<Vec<TaskComparison>, EvalError> {
    let mut out = Vec::new();
    let mut all_a = Vec::new();
    let mut all_b = Vec::new();
    for ta in &a.tasks {
        let Some(tb) = b.tasks.iter().find(|t| t.task == ta.task) else { continue };
        if ta.version != tb.version {
            return Err(EvalError::Invalid(format!(
                "task {} has version {} in one report and {} in the other: different data or prompt",
                ta.task, ta.version, tb.version
            )));
        }
        let Some((metric, _)) = ta.headline() else { continue };
        let scores_b: BTreeMap<&str, f64> = tb
            .samples
            .iter()
            .filter_map(|s| s.scores.get(metric).map(|v| (s.id.as_str(), *v)))
            .collect();
        let (mut va, mut vb, mut changed) = (Vec::new(), Vec::new(), Vec::new());
        for s in &ta.samples {
            if let (Some(x), Some(y)) = (s.scores.get(metric), scores_b.get(s.id.as_str())) {
                va.push(*x);
                vb.push(*y);
                if x != y {
                    changed.push((s.id.clone(), *x, *y));
                }
            }
        }
        if va.is_empty() {
            continue;
        }
        all_a.extend_from_slice(&va);
        all_b.extend_from_slice(&vb);
        out.push(TaskComparison {
            task: ta.task.clone(),
            metric: metric.to_owned(),
            a: stats::mean(&va),
            b: stats::mean(&vb),
            paired: stats::paired(&va, &vb, 0),
            changed,
        });
    }
    if out.len() > 1 {
        out.push(TaskComparison {
            task: "(all)".into(),
            metric: "headline".into(),
            a: stats::mean(&all_a),
            b: stats::mean(&all_b),
            paired: stats::paired(&all_a, &all_b, 0),
            changed: Vec::new(),
        });
    }
    Ok(out)
}

/// Rows of a leaderboard: every group (ability) any report has, then "overall".
fn leaderboard_rows(reports: &[Report]) -> Vec<String> {
    let mut groups: Vec<String> =
        reports.iter().flat_map(|r| r.groups.iter().map(|g| g.group.clone())).collect();
    groups.sort();
    groups.dedup();
    groups.push("overall".into());
    groups
}

fn group_score(report: &Report, group: &str) -> Option<Summary> {
    if group == "overall" {
        return report.overall;
    }
    report.groups.iter().find(|g| g.group == group).map(|g| g.score)
}

/// A Markdown leaderboard: one column per model, one row per ability, then overall.
pub fn leaderboard_markdown(reports: &[Report]) -> String {
    let mut md = String::from("| ability |");
    for r in reports {
        let _ = write!(md, " {} |", r.model);
    }
    md.push_str("\n|---|");
    md.push_str(&"---:|".repeat(reports.len()));
    md.push('\n');
    for group in leaderboard_rows(reports) {
        let _ = write!(md, "| {group} |");
        for r in reports {
            let cell =
                group_score(r, &group).map_or("-".into(), |s| format!("{:.1}", s.mean * 100.0));
            let _ = write!(md, " {cell} |");
        }
        md.push('\n');
    }
    md
}

/// An HTML leaderboard: per ability, one bar per model with its 95% interval, and the table.
pub fn leaderboard_html(reports: &[Report]) -> String {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>EVE leaderboard</title><style>body{font-family:sans-serif;\
         max-width:1100px;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}</style>\
         </head><body><h1>EVE leaderboard</h1>",
    );
    for group in leaderboard_rows(reports) {
        let rows: Vec<(String, Summary)> = reports
            .iter()
            .filter_map(|r| group_score(r, &group).map(|s| (r.model.clone(), s)))
            .collect();
        let _ = write!(html, "<h2>{}</h2>{}", escape(&group), bar_chart(&rows));
    }
    html.push_str("<table><tr><th>ability</th>");
    for r in reports {
        let _ = write!(html, "<th>{}</th>", escape(&r.model));
    }
    html.push_str("</tr>");
    for group in leaderboard_rows(reports) {
        let _ = write!(html, "<tr><td>{}</td>", escape(&group));
        for r in reports {
            let cell =
                group_score(r, &group).map_or("-".into(), |s| format!("{:.1}", s.mean * 100.0));
            let _ = write!(html, "<td>{cell}</td>");
        }
        html.push_str("</tr>");
    }
    html.push_str("</table></body></html>\n");
    html
}
