//! A self-contained HTML page for a benchmark report: tables plus inline SVG plots, no
//! scripts, fonts or other network resources, so it can be attached to a ticket or opened
//! offline.

use std::fmt::Write as _;

use super::report::{BenchReport, SweepPoint};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The whole page.
pub fn render(report: &BenchReport) -> String {
    let c = &report.config;
    let mut out = String::new();
    let title = format!(
        "fleet sim bench — {} clusters × {} bundles",
        c.clusters, c.bundles
    );
    let _ = write!(
        out,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{}</title><style>\
         body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #bbb;padding:.3em .6em;text-align:right}}th{{background:#eee}}\
         td:first-child,th:first-child{{text-align:left}}.missed{{color:#b00;font-weight:bold}}\
         .met{{color:#070}}</style></head><body><h1>{}</h1>",
        escape(&title),
        escape(&title)
    );
    let _ = write!(
        out,
        "<p>{} resources per bundle, {} GitRepos, profile <code>{}</code>, seed {}; runtimes {}; fleet-rs {}; {} CPUs. \
         Store raw write rate: {:.0} writes/s.</p>",
        c.resources_per_bundle,
        c.gitrepos,
        escape(&c.profile),
        c.seed,
        escape(&c.runtimes),
        escape(&report.fleet_version),
        report.machine.cpus,
        report.store_writes_per_second
    );

    if let Some(stopped) = &report.incomplete {
        let _ = write!(
            out,
            "<p class=\"missed\">Incomplete: {}. What follows was measured until then.</p>",
            escape(&stopped.to_string())
        );
    }
    out.push_str("<h2>Stages</h2><table><tr><th>stage</th><th>objects</th><th>p50 ms</th><th>p95 ms</th><th>max ms</th><th>total s</th><th>objects/s</th><th>writes vs store</th></tr>");
    for s in &report.stages {
        let _ = write!(
            out,
            "<tr><td title=\"{}\">{}</td><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td><td>{:.2}</td><td>{:.0}</td><td>{:.1} %</td></tr>",
            escape(&s.description),
            escape(&s.name),
            s.objects,
            s.p50_ms,
            s.p95_ms,
            s.max_ms,
            s.total_seconds,
            s.objects_per_second,
            s.write_rate_fraction_of_store * 100.0
        );
    }
    out.push_str("</table>");
    out.push_str(&stage_plot(report));

    out.push_str("<h2>Targets</h2><table><tr><th>target</th><th>goal</th><th>measured</th><th>verdict</th></tr>");
    for t in &report.targets {
        let (class, verdict) = match t.met {
            Some(true) => ("met", "met"),
            Some(false) => ("missed", "missed"),
            None => ("", "not exercised"),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{verdict}</td></tr>",
            escape(&t.name),
            escape(&t.target),
            escape(&t.measured)
        );
    }
    out.push_str("</table>");
    if let Some(b) = &report.bottleneck {
        let _ = write!(out, "<p><b>Bottleneck:</b> {}</p>", escape(b));
    }

    out.push_str("<h2>API load</h2><table><tr><th>upstream verb</th><th>requests</th></tr>");
    for (verb, n) in &report.api.upstream_by_verb {
        let _ = write!(out, "<tr><td>{}</td><td>{n}</td></tr>", escape(verb));
    }
    out.push_str("</table><table><tr><th>upstream resource</th><th>requests</th></tr>");
    for (resource, n) in &report.api.upstream_by_resource {
        let _ = write!(out, "<tr><td>{}</td><td>{n}</td></tr>", escape(resource));
    }
    let _ = write!(
        out,
        "</table><p>Downstream: {:.0} requests per cluster on average, {} at most. Upstream writes per \
         BundleDeployment per change: {:.2}. Status writes while idle: {} in {:.0} s. Agent \
         check-ins (counted in neither): {} while idle, {} during the update.</p>",
        report.api.downstream_per_cluster_mean,
        report.api.downstream_per_cluster_max,
        report.api.writes_per_bundledeployment_per_change,
        report.api.idle_status_writes,
        report.api.idle_seconds,
        report.api.idle_agent_check_ins,
        report.api.update_agent_check_ins
    );

    out.push_str("<h2>Resources</h2><table><tr><th>component</th><th>CPU s</th></tr>");
    for (component, seconds) in &report.cpu_seconds {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{seconds:.1}</td></tr>",
            escape(component)
        );
    }
    out.push_str("</table>");
    let _ = write!(
        out,
        "<p>Peak RSS: {}. Stored upstream: {} objects, {:.1} MiB; downstream {:.1} MiB.",
        report
            .peak_rss_bytes
            .map(|b| format!("{:.0} MiB", b as f64 / (1u64 << 20) as f64))
            .unwrap_or_else(|| "unknown".into()),
        report.storage.upstream_objects,
        report.storage.upstream_bytes as f64 / (1u64 << 20) as f64,
        report.storage.downstream_bytes as f64 / (1u64 << 20) as f64
    );
    if let Some(l) = &report.storage.largest_object {
        let _ = write!(
            out,
            " Largest object: {} {} ({} bytes; etcd limit {}, request limit {}).",
            escape(&l.kind),
            escape(&l.name),
            l.bytes,
            report.storage.etcd_object_limit,
            report.storage.request_limit
        );
    }
    out.push_str("</p>");
    if !report.workers.is_empty() {
        out.push_str("<table><tr><th>reconciler metric</th><th>value</th></tr>");
        for (k, v) in &report.workers {
            let _ = write!(out, "<tr><td>{}</td><td>{v}</td></tr>", escape(k));
        }
        out.push_str("</table>");
    }
    for w in &report.warnings {
        let _ = write!(out, "<p class=\"missed\">Warning: {}</p>", escape(w));
    }

    if !report.sweep.is_empty() {
        out.push_str("<h2>Scaling</h2>");
        out.push_str(&sweep_plot(&report.sweep, report.growth_exponent));
        out.push_str("<table><tr><th>clusters</th><th>BundleDeployments</th><th>total s</th><th>ms per BundleDeployment</th></tr>");
        for p in &report.sweep {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.3}</td></tr>",
                p.clusters, p.bundle_deployments, p.total_seconds, p.ms_per_bundle_deployment
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</body></html>\n");
    out
}

/// Horizontal bars per stage: p50, p95 and max latency on one linear axis.
fn stage_plot(report: &BenchReport) -> String {
    let width = 720.0;
    let label_w = 200.0;
    let row_h = 34.0;
    let height = row_h * report.stages.len() as f64 + 40.0;
    let max = report
        .stages
        .iter()
        .map(|s| s.max_ms)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let scale = (width - label_w - 20.0) / max;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"stage latencies\">"
    );
    for (i, s) in report.stages.iter().enumerate() {
        let y = 10.0 + row_h * i as f64;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            y + 16.0,
            escape(&s.name)
        );
        for (value, color, h) in [
            (s.max_ms, "#f4c7c3", 24.0),
            (s.p95_ms, "#f7a35c", 16.0),
            (s.p50_ms, "#4a90d9", 8.0),
        ] {
            let _ = write!(
                svg,
                "<rect x=\"{label_w}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h}\" fill=\"{color}\"/>",
                y + (24.0 - h) / 2.0,
                value * scale
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"{label_w}\" y=\"{:.1}\" font-size=\"11\">0 ms</text><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{max:.0} ms (blue p50, orange p95, pink max)</text></svg>",
        height - 6.0,
        width - 20.0,
        height - 6.0
    );
    svg
}

/// Time per BundleDeployment against clusters, both on log axes.
fn sweep_plot(points: &[SweepPoint], exponent: Option<f64>) -> String {
    let (w, h, pad) = (640.0, 360.0, 50.0);
    let xs: Vec<f64> = points
        .iter()
        .map(|p| (p.clusters.max(1) as f64).log10())
        .collect();
    let ys: Vec<f64> = points
        .iter()
        .map(|p| p.ms_per_bundle_deployment.max(1e-6).log10())
        .collect();
    let (x0, x1) = bounds(&xs);
    let (y0, y1) = bounds(&ys);
    let px = |x: f64| pad + (x - x0) / (x1 - x0) * (w - 2.0 * pad);
    let py = |y: f64| h - pad - (y - y0) / (y1 - y0) * (h - 2.0 * pad);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"scaling curve\">\
         <line x1=\"{pad}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#444\"/>\
         <line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{:.1}\" stroke=\"#444\"/>",
        h - pad,
        w - pad,
        h - pad,
        h - pad
    );
    let path: Vec<String> = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
        .collect();
    let _ = write!(
        svg,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#4a90d9\" stroke-width=\"2\"/>",
        path.join(" ")
    );
    for (p, (x, y)) in points.iter().zip(xs.iter().zip(&ys)) {
        // Labels of points in the right half end at their point, so they stay in the plot.
        let (label_x, anchor) = if px(*x) > w / 2.0 {
            (px(*x) - 6.0, "end")
        } else {
            (px(*x) + 6.0, "start")
        };
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#4a90d9\"/><text x=\"{label_x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"{anchor}\">{} clusters: {:.3} ms</text>",
            px(*x),
            py(*y),
            py(*y) - 6.0,
            p.clusters,
            p.ms_per_bundle_deployment
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">clusters (log)</text>\
         <text x=\"12\" y=\"{:.1}\" font-size=\"12\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">ms per BundleDeployment (log)</text>\
         <text x=\"{:.1}\" y=\"20\" font-size=\"12\" text-anchor=\"end\">growth exponent {}</text></svg>",
        w / 2.0,
        h - 12.0,
        h / 2.0,
        h / 2.0,
        w - pad,
        exponent
            .map(|e| format!("{e:.2}"))
            .unwrap_or_else(|| "n/a".into())
    );
    svg
}

/// Axis bounds with a margin; a single value gets a unit-wide range.
fn bounds(values: &[f64]) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if (hi - lo).abs() < 1e-9 {
        return (lo - 0.5, hi + 0.5);
    }
    let margin = (hi - lo) * 0.1;
    (lo - margin, hi + margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `x` and `text-anchor` of every point label (`N clusters: …`).
    fn point_labels(svg: &str) -> Vec<(f64, String)> {
        svg.split("<text ")
            .skip(1)
            .filter(|t| t.contains(" clusters: "))
            .map(|t| {
                let attr = |name: &str| {
                    let start = t.find(&format!("{name}=\"")).map(|i| i + name.len() + 2);
                    start
                        .and_then(|s| t[s..].find('"').map(|e| t[s..s + e].to_string()))
                        .unwrap_or_default()
                };
                (attr("x").parse().unwrap_or(f64::NAN), attr("text-anchor"))
            })
            .collect()
    }

    #[test]
    fn sweep_labels_stay_inside_the_plot() {
        let points: Vec<SweepPoint> = [(100, 2.15), (1_000, 2.87), (10_000, 8.18)]
            .into_iter()
            .map(|(clusters, ms)| SweepPoint {
                clusters,
                bundle_deployments: clusters * 10,
                total_seconds: ms * clusters as f64 / 100.0,
                ms_per_bundle_deployment: ms,
            })
            .collect();
        let labels = point_labels(&sweep_plot(&points, Some(0.29)));
        assert_eq!(labels.len(), 3);
        // A label starting in the left half has room for its text; one in the right half
        // ends at its point.
        for (x, anchor) in &labels {
            match anchor.as_str() {
                "start" => assert!(*x <= 326.0, "{labels:?}"),
                "end" => assert!(*x > 320.0 && *x < 590.0, "{labels:?}"),
                other => panic!("unexpected anchor {other:?}"),
            }
        }
        assert_eq!(labels[2].1, "end", "the largest size is at the right edge");
    }
}
