//! The demo's `report.html`: one self-contained page drawn from
//! `summary.json` alone, charts as inline SVG (no script, no network, no
//! web fonts). It reads the summary and never recomputes a figure, so the
//! page and the JSON cannot disagree.

use std::fmt::Write as _;

use serde_json::Value;

/// CJK first: the seed's names (张三, the Beijing address) need a font that
/// has them; Debian's `fonts-noto-cjk` provides "Noto Sans CJK SC".
const FONT_STACK: &str = "\"Noto Sans CJK SC\", \"Noto Sans SC\", \"Noto Sans\", \"DejaVu Sans\", sans-serif";

/// One colour per line or bar group, readable on white and in grey print.
const PALETTE: [&str; 6] = ["#2f6fb0", "#d9822b", "#3a9b5c", "#b03a5b", "#7a5cb0", "#6b6b6b"];

const CHART_WIDTH: f64 = 760.0;
const VALUE_ROOM: f64 = 190.0;
/// Series longer than this get no point markers (hover the line instead).
const MARKERS_UP_TO: usize = 40;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn text(v: &Value) -> String {
    escape(v.as_str().map_or_else(|| v.to_string(), str::to_owned).as_str())
}

/// A number from a JSON number or a decimal string ("399.97").
fn number(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// Horizontal bars: `(label, value, shown value)`, scaled to the largest.
fn hbars(rows: &[(String, f64, String)], color: &str) -> String {
    if rows.is_empty() {
        return "<p class=empty>nothing recorded</p>".to_owned();
    }
    let label_w = 230.0;
    let row_h = 24.0;
    let max = rows.iter().map(|r| r.1).fold(0.0_f64, f64::max).max(f64::MIN_POSITIVE);
    // Room on the right for the shown value ("v6 · 20191 rows · 3 files").
    let bar_room = CHART_WIDTH - label_w - VALUE_ROOM;
    let height = row_h * rows.len() as f64 + 6.0;
    let mut svg = format!(
        "<svg class=chart viewBox=\"0 0 {CHART_WIDTH} {height}\" width={CHART_WIDTH} height={height} role=img>"
    );
    for (i, (label, value, shown)) in rows.iter().enumerate() {
        let y = i as f64 * row_h + 3.0;
        let w = (value / max * bar_room).max(1.0);
        let _ = write!(
            svg,
            "<text x={} y={} text-anchor=end>{}</text><rect x={label_w} y={y} width={w:.1} height={} fill=\"{color}\"><title>{} {}</title></rect><text x={:.1} y={}>{}</text>",
            label_w - 8.0,
            y + 16.0,
            escape(label),
            row_h - 6.0,
            escape(label),
            escape(shown),
            label_w + w + 6.0,
            y + 16.0,
            escape(shown)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Bars from a JSON object of counts.
fn count_bars(counts: &Value, color: &str) -> String {
    let rows: Vec<(String, f64, String)> = counts
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| number(v).map(|n| (k.clone(), n, v.to_string())))
        .collect();
    hbars(&rows, color)
}

/// One line of a line chart.
struct Line {
    name: String,
    color: &'static str,
    dashed: bool,
    /// `(x, y, hover text)`.
    points: Vec<(f64, f64, String)>,
}

/// A line chart with y gridlines and x labels `(x, label)`; `step` draws
/// each value flat until the next (a balance holds between events).
fn line_chart(lines: &[Line], x_labels: &[(f64, String)], unit: &str, step: bool) -> String {
    let all: Vec<(f64, f64)> = lines.iter().flat_map(|l| l.points.iter().map(|p| (p.0, p.1))).collect();
    if all.is_empty() {
        return "<p class=empty>nothing recorded</p>".to_owned();
    }
    let (left, right, top, bottom, height) = (70.0, 20.0, 10.0, 40.0, 280.0);
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
    for (x, y) in &all {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if y0 > 0.0 && y0 < (y1 - y0) {
        y0 = 0.0;
    }
    let pad = ((y1 - y0) * 0.05).max(0.5);
    let (y0, y1) = (y0 - if y0 == 0.0 { 0.0 } else { pad }, y1 + pad);
    let x_span = (x1 - x0).max(1.0);
    let plot_w = CHART_WIDTH - left - right;
    let plot_h = height - top - bottom;
    let sx = |x: f64| left + (x - x0) / x_span * plot_w;
    let sy = |y: f64| top + (y1 - y) / (y1 - y0) * plot_h;
    let mut svg = format!(
        "<svg class=chart viewBox=\"0 0 {CHART_WIDTH} {height}\" width={CHART_WIDTH} height={height} role=img>"
    );
    for i in 0..=4 {
        let v = y0 + (y1 - y0) * f64::from(i) / 4.0;
        let y = sy(v);
        let _ = write!(
            svg,
            "<line x1={left} x2={} y1={y:.1} y2={y:.1} class=grid /><text x={} y={:.1} text-anchor=end>{v:.1}</text>",
            CHART_WIDTH - right,
            left - 6.0,
            y + 4.0
        );
    }
    let _ = write!(svg, "<text x=4 y={} class=unit>{}</text>", top + 10.0, escape(unit));
    for (x, label) in x_labels {
        let _ = write!(
            svg,
            "<text x={:.1} y={} text-anchor=middle>{}</text>",
            sx(*x),
            height - bottom + 18.0,
            escape(label)
        );
    }
    for line in lines {
        let mut path = String::new();
        let mut last_y = None;
        for (i, (x, y, _)) in line.points.iter().enumerate() {
            let (px, py) = (sx(*x), sy(*y));
            if i == 0 {
                let _ = write!(path, "M{px:.1},{py:.1}");
            } else {
                if step && let Some(ly) = last_y {
                    let _ = write!(path, " L{px:.1},{ly:.1}");
                }
                let _ = write!(path, " L{px:.1},{py:.1}");
            }
            last_y = Some(py);
        }
        // Dashed lines (a percentile beside its average) stay in the background.
        let style =
            if line.dashed { " stroke-width=1.2 stroke-dasharray=\"4 3\" opacity=0.7" } else { " stroke-width=2" };
        let _ = write!(
            svg,
            "<path d=\"{path}\" fill=none stroke=\"{}\"{style}><title>{}</title></path>",
            line.color,
            escape(&line.name)
        );
        if line.points.len() > MARKERS_UP_TO {
            continue;
        }
        for (x, y, hover) in &line.points {
            let _ = write!(
                svg,
                "<circle cx={:.1} cy={:.1} r=2.5 fill=\"{}\"><title>{}</title></circle>",
                sx(*x),
                sy(*y),
                line.color,
                escape(hover)
            );
        }
    }
    svg.push_str("</svg>");
    let legend: String = lines
        .iter()
        .map(|l| {
            let style = if l.dashed { "border-top:2px dashed" } else { "border-top:3px solid" };
            format!("<span class=key><i style=\"{style} {}\"></i>{}</span>", l.color, escape(&l.name))
        })
        .collect();
    format!("{svg}<div class=legend>{legend}</div>")
}

/// Created, confirmed, paid, delivered: how far the workload's orders got.
fn funnel(w: &Value) -> String {
    let orders = number(&w["orders"]).unwrap_or(0.0);
    let before = number(&w["cancelled_orders"]["cancelled_before_confirmation"]).unwrap_or(0.0);
    let paid = number(&w["payments_captured"]).unwrap_or(0.0);
    let delivered = number(&w["orders_per_terminal_state"]["delivered"]).unwrap_or(0.0);
    let stage = |name: &str, n: f64| {
        let share = if orders > 0.0 { n / orders * 100.0 } else { 0.0 };
        (name.to_owned(), n, format!("{n} ({share:.1}%)"))
    };
    hbars(
        &[
            stage("created", orders),
            stage("confirmed", orders - before),
            stage("paid", paid),
            stage("delivered", delivered),
        ],
        PALETTE[0],
    )
}

fn commerce_html(summary: &Value) -> String {
    let ddm = &summary["scenarios"]["demo_domain_driven_modeling"];
    let es = &summary["scenarios"]["demo_event_sourcing"];
    let w = &summary["platform"]["sagas"];
    let facts = [
        ("order_status", &ddm["order_status"]),
        ("total_amount", &ddm["total_amount"]),
        ("shipping_address", &ddm["shipping_address"]),
        ("account_holder", &es["account_holder"]),
        ("balance", &es["balance"]),
        ("account_002 balance", &es["account_002"]["balance"]),
        ("money_conserved (workload)", &w["money_conserved"]),
    ];
    let rows: String = facts.iter().map(|(k, v)| format!("<tr><td>{k}</td><td>{}</td></tr>", text(v))).collect();
    let transfers = serde_json::json!({
        "completed": w["transfers_completed"], "compensated": w["transfers_compensated"],
        "refused at once": w["transfers_refused_at_once"],
    });
    let balance_lines: Vec<Line> = es["balance_over_time"]
        .as_object()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, (account, steps))| Line {
            name: account.clone(),
            color: PALETTE[i % PALETTE.len()],
            dashed: false,
            points: steps
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .filter_map(|(n, s)| {
                    let b = number(&s["balance"])?;
                    Some((
                        n as f64,
                        b,
                        format!("{account} {}: {} → {b:.2}", text(&s["timestamp"]), text(&s["event_type"])),
                    ))
                })
                .collect(),
        })
        .collect();
    let longest = balance_lines.iter().map(|l| l.points.len()).max().unwrap_or(0);
    let x_labels: Vec<(f64, String)> = (0..longest).map(|n| (n as f64, format!("event {}", n + 1))).collect();
    format!(
        "<h2>Orders and accounts</h2><table>{rows}</table>\
<h3>Order funnel (workload of {} orders, seed {})</h3>{}\
<h3>Account balances over time (demo_event_sourcing, {})</h3>{}\
<h3>Orders per terminal state</h3>{}<h3>Cancelled orders</h3>{}\
<h3>Transfers</h3>{}<h3>Compensated transfers by reason</h3>{}",
        w["orders"],
        w["seed"],
        funnel(w),
        text(&es["currency"]),
        line_chart(&balance_lines, &x_labels, &text(&es["currency"]), true),
        count_bars(&w["orders_per_terminal_state"], PALETTE[0]),
        count_bars(&w["cancelled_orders"], PALETTE[3]),
        count_bars(&transfers, PALETTE[2]),
        count_bars(&w["transfers_compensated_by_reason"], PALETTE[1])
    )
}

/// Revenue per product summed over every day of the gold table.
fn revenue_html(lake: &Value) -> String {
    let rows: Vec<(String, f64, String)> = lake["revenue_per_product"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let revenue = number(&r["revenue"])?;
            let label = format!("{} ({})", r["product_id"].as_str()?, r["currency"].as_str().unwrap_or(""));
            Some((label, revenue, format!("{revenue:.2} in {} orders", r["orders"])))
        })
        .collect();
    format!("<h2>Revenue per product (gold.revenue_per_product_day)</h2>{}", hbars(&rows, PALETTE[2]))
}

fn timeseries_html(summary: &Value) -> String {
    let ts = &summary["scenarios"]["demo_time_series_modeling"];
    let cities = summary["platform"]["timeseries"]["per_city"].as_array().cloned().unwrap_or_default();
    let mut lines = Vec::new();
    let mut first_hour: Option<String> = None;
    for (i, city) in cities.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let name = city["location"].as_str().unwrap_or("").to_owned();
        let hours: Vec<(f64, f64, f64, String)> = city["hours"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(n, h)| Some((n as f64, h[1].as_f64()?, h[2].as_f64()?, h[0].as_str()?.to_owned())))
            .collect();
        if first_hour.is_none() {
            first_hour = hours.first().map(|h| h.3.clone());
        }
        let avg = hours.iter().map(|h| (h.0, h.1, format!("{name} {}: avg {:.2}°C", h.3, h.1))).collect();
        let p95 = hours.iter().map(|h| (h.0, h.2, format!("{name} {}: p95 {:.2}°C", h.3, h.2))).collect();
        lines.push(Line { name: format!("{name} 1h avg"), color, dashed: false, points: avg });
        lines.push(Line { name: format!("{name} 1h p95"), color, dashed: true, points: p95 });
    }
    let longest = lines.iter().map(|l| l.points.len()).max().unwrap_or(0);
    let x_labels: Vec<(f64, String)> = (0..longest).step_by(12).map(|h| (h as f64, format!("+{h} h"))).collect();
    let buckets: String = ts["buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                text(&b["timestamp"]),
                b["count"],
                b["avg"],
                b["min"],
                b["max"],
                b["p95"]
            )
        })
        .collect();
    format!(
        "<h2>demo_time_series_modeling: {} ({} points)</h2>\
<h3>Temperature per city, 1-hour average and p95, from {}</h3>{}\
<h3>Beijing 12:00–18:00, 1-hour buckets (answered from {})</h3>\
<table><tr><th>hour</th><th>count</th><th>avg</th><th>min</th><th>max</th><th>p95</th></tr>{buckets}</table>",
        text(&ts["created_time_series"]),
        ts["inserted_data_points"],
        escape(first_hour.as_deref().unwrap_or("")),
        line_chart(&lines, &x_labels, "°C", false),
        text(&ts["answered_from"])
    )
}

fn mesh_html(dm: &Value) -> String {
    let quality = &dm["quality_metrics"];
    let products: String = dm["products"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let measured = if p["id"] == "customer_data_v1" {
                format!("{} records, {} invalid", dm["records_measured"], dm["invalid_records"])
            } else {
                "no records yet".to_owned()
            };
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{measured}</td></tr>",
                text(&p["id"]),
                text(&p["name"]),
                text(&p["domain"]),
                text(&p["status"])
            )
        })
        .collect();
    let dims: Vec<(String, f64, String)> = ["completeness", "accuracy", "timeliness", "consistency"]
        .iter()
        .filter_map(|d| {
            let v = quality[*d].as_f64()?;
            Some(((*d).to_owned(), v * 100.0, format!("{:.1}%", v * 100.0)))
        })
        .collect();
    format!(
        "<h2>demo_data_mesh: data products</h2><p>cust_001: <code>{}</code></p>\
<table><tr><th>product</th><th>name</th><th>domain</th><th>status</th><th>quality measured on</th></tr>{products}</table>\
<h3>{} quality, measured on {} records</h3>{}",
        text(&dm["customer_data"]),
        text(&dm["registered_data_product"]),
        dm["records_measured"],
        hbars(&dims, PALETTE[4])
    )
}

fn lake_html(summary: &Value) -> String {
    let dl = &summary["scenarios"]["demo_data_lake_modeling"];
    let tables = summary["platform"]["lake"]["tables"].as_array().cloned().unwrap_or_default();
    let mut sections = String::new();
    for (i, layer) in ["bronze", "silver", "gold"].iter().enumerate() {
        let of_layer: Vec<&Value> = tables
            .iter()
            .filter(|t| t["table"].as_str().is_some_and(|n| n.starts_with(&format!("{layer}."))))
            .collect();
        let bars: Vec<(String, f64, String)> = of_layer
            .iter()
            .filter_map(|t| {
                let version = number(&t["version"])?;
                Some((
                    t["table"].as_str()?.to_owned(),
                    version,
                    format!("v{version} · {} rows · {} files", t["rows"], t["files"]),
                ))
            })
            .collect();
        let _ = write!(
            sections,
            "<h3>{layer}: {} tables, latest version each</h3>{}",
            of_layer.len(),
            hbars(&bars, PALETTE[i])
        );
    }
    let gold: String = dl["gold_layer_objects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| format!("<li><code>{}</code> ({} bytes)</li>", text(&o["path"]), o["size_bytes"]))
        .collect();
    format!(
        "<h2>demo_data_lake_modeling: lake tables per layer</h2><p>Total objects: {}; total partitions: {}; gold statistics: <code>{}</code></p><ul>{gold}</ul>{sections}",
        dl["total_objects"],
        dl["total_partitions"],
        escape(&dl["gold_statistics"].to_string())
    )
}

fn round_trip_html(summary: &Value) -> String {
    let rows: String = summary["platform"]["round_trip"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                text(&e["topic"]),
                e["offset"],
                text(&e["type"]),
                text(&e["subject"]),
                escape(&e["data"].to_string())
            )
        })
        .collect();
    format!(
        "<h2>Events per topic (commerce)</h2>{}<h2>Round trip of the sample events</h2>\
<table><tr><th>topic</th><th>offset</th><th>type</th><th>subject</th><th>data</th></tr>{rows}</table>",
        count_bars(&summary["platform"]["commerce_events_per_topic"], PALETTE[5])
    )
}

/// The whole page.
pub fn html(summary: &Value) -> String {
    format!(
        "<!doctype html><html lang=zh-Hans><meta charset=utf-8><title>platform demo</title>
<style>body{{font:14px/1.45 {FONT_STACK};margin:2em auto;max-width:{CHART_WIDTH}px;color:#222;padding:0 1em}}
h2{{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:2em}}table{{border-collapse:collapse;margin:.5em 0}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}}code{{font-size:12px;word-break:break-all}}
svg.chart{{display:block;max-width:100%;height:auto;font:12px {FONT_STACK}}}svg .grid{{stroke:#e5e5e5}}svg .unit{{fill:#666}}
.legend{{display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12px}}.key i{{display:inline-block;width:22px;margin-right:6px;vertical-align:middle}}
.empty{{color:#888}}</style>
<h1>Platform demo</h1><p>bus: {}; generated {}</p>{}{}{}{}{}{}",
        text(&summary["bus"]),
        text(&summary["generated_at"]),
        commerce_html(summary),
        revenue_html(&summary["platform"]["lake"]),
        timeseries_html(summary),
        mesh_html(&summary["scenarios"]["demo_data_mesh"]),
        lake_html(summary),
        round_trip_html(summary)
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn charts_scale_to_the_data_and_escape_what_they_show() {
        let bars = hbars(&[("a<b".into(), 10.0, "10".into()), ("c".into(), 5.0, "5".into())], "#000");
        assert!(bars.contains("a&lt;b") && !bars.contains("a<b"));
        // The larger value gets the full width, the other half of it.
        let room = CHART_WIDTH - 230.0 - VALUE_ROOM;
        assert!(bars.contains(&format!("width={room:.1}")), "{bars}");
        assert!(bars.contains(&format!("width={:.1}", room / 2.0)), "{bars}");
        assert!(hbars(&[], "#000").contains("nothing recorded"));
    }

    #[test]
    fn the_page_shows_each_figure_of_the_summary() {
        let summary = json!({
            "bus": "in-process", "generated_at": "2026-12-01T00:00:00Z",
            "scenarios": {
                "demo_event_sourcing": { "account_holder": "张三", "currency": "USD", "balance": "1000.00",
                    "balance_over_time": { "account_001": [
                        {"timestamp": "t1", "event_type": "AccountCreated", "balance": "1000.00"},
                        {"timestamp": "t2", "event_type": "MoneyDeposited", "balance": "1500.00"}] } },
                "demo_time_series_modeling": { "created_time_series": "sensor_temperature", "inserted_data_points": 1000 },
            },
            "platform": {
                "sagas": { "orders": 200, "payments_captured": 150, "cancelled_orders": {"cancelled_before_confirmation": 10},
                           "orders_per_terminal_state": {"delivered": 120} },
                "lake": { "revenue_per_product": [{"product_id": "product_000", "currency": "CNY", "revenue": "123.4500", "orders": 3}],
                          "tables": [{"table": "gold.revenue_per_product_day", "version": 4, "rows": 9, "files": 2}] },
                "timeseries": { "per_city": [{"location": "beijing", "hours": [["h0", 20.5, 24.0], ["h1", 19.5, 23.0]]}] },
            },
        });
        let page = html(&summary);
        for needle in [
            "张三",
            "190 (95.0%)",
            "150 (75.0%)",
            "120 (60.0%)",
            "product_000 (CNY)",
            "123.45 in 3 orders",
            "beijing 1h p95",
            "beijing h1: avg 19.50°C",
            "v4 · 9 rows · 2 files",
            "account_001 t2: MoneyDeposited → 1500.00",
            "Noto Sans CJK SC",
        ] {
            assert!(page.contains(needle), "missing {needle}");
        }
        assert!(!page.contains("<script") && !page.contains("http://") && !page.contains("https://"), "self-contained");
    }
}
