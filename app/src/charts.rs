//! The Overview's charts, drawn on the server with plotters into SVG text (server only: plotters never reaches
//! the browser bundle) and inlined in the page.
//!
//! plotters writes colours as `fill="#RRGGBB"` / `stroke="#RRGGBB"` attributes. The charts are drawn with the
//! light theme's colours and every known colour also gets a class (`f-<name>` for fills, `s-<name>` for
//! strokes), so the stylesheet repaints the same SVG for the dark theme: CSS rules beat SVG presentation
//! attributes. Status colours are the stylesheet's `--st-<status>-text` colours, so a bar and a status badge
//! match. Text is SVG `<text>` (no fonts are read on the server); the legends are HTML beside the chart, so
//! colour is never the only cue.

use flowstate_model::status::{CANCELLED, COMPLETED, FAILED, OTHER, PAUSED, RUNNING};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::format::{count, duration_ms};
use crate::model::{ActivityRow, Chart, PipelinePercentiles};

/// Width of every chart's coordinate system (the SVG scales to its box).
const WIDTH: u32 = 760;

/// A named colour: the light theme's value, and the class name the stylesheet repaints it by.
struct Paint {
    name: &'static str,
    rgb: (u8, u8, u8),
}

impl Paint {
    const fn new(name: &'static str, rgb: (u8, u8, u8)) -> Self {
        Paint { name, rgb }
    }
    fn color(&self) -> RGBColor {
        RGBColor(self.rgb.0, self.rgb.1, self.rgb.2)
    }
    fn hex(&self) -> String {
        format!("#{:02X}{:02X}{:02X}", self.rgb.0, self.rgb.1, self.rgb.2)
    }
}

// Light theme values of style/main.css (`--text`, `--muted`, `--border`, `--st-*-text`).
const TEXT: Paint = Paint::new("text", (0x1b, 0x1f, 0x24));
const AXIS: Paint = Paint::new("axis", (0x57, 0x60, 0x6a));
const GRID: Paint = Paint::new("grid", (0xd0, 0xd7, 0xde));
const STATUS: [Paint; 6] = [
    Paint::new(RUNNING, (0x0a, 0x4b, 0x8f)),
    Paint::new(PAUSED, (0x6b, 0x4a, 0x00)),
    Paint::new(COMPLETED, (0x11, 0x63, 0x29)),
    Paint::new(FAILED, (0xa4, 0x0e, 0x26)),
    Paint::new(CANCELLED, (0x42, 0x4a, 0x53)),
    Paint::new(OTHER, (0x5a, 0x2d, 0x91)),
];
// Percentile markers: shape and colour differ (circle, triangle, cross).
const P50: Paint = Paint::new("p50", (0x0b, 0x5c, 0xd5));
const P95: Paint = Paint::new("p95", (0x9a, 0x67, 0x00));
const P99: Paint = Paint::new("p99", (0xcf, 0x22, 0x2e));

fn status_paint(status: &str) -> &'static Paint {
    STATUS
        .iter()
        .find(|p| p.name == status)
        .unwrap_or(&STATUS[STATUS.len() - 1])
}

fn all_paints() -> impl Iterator<Item = &'static Paint> {
    [&TEXT, &AXIS, &GRID, &P50, &P95, &P99]
        .into_iter()
        .chain(STATUS.iter())
}

/// What an activity chart counts per bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivitySpan {
    /// One bar per hour, the last 24 hours.
    Hours,
    /// One bar per day, the last 30 days.
    Days,
}

impl ActivitySpan {
    fn describe(self, bars: usize) -> String {
        match self {
            ActivitySpan::Hours => format!("Runs created per hour over the last {bars} hours (UTC)"),
            ActivitySpan::Days => format!("Runs created per day over the last {bars} days (UTC)"),
        }
    }
    /// Every how many bars a label is written.
    fn label_every(self, bars: usize) -> usize {
        match self {
            ActivitySpan::Hours => 3,
            ActivitySpan::Days => (bars / 8).max(1),
        }
    }
    fn unit(self) -> &'static str {
        match self {
            ActivitySpan::Hours => "hour",
            ActivitySpan::Days => "day",
        }
    }
}

/// Runs created per bucket as bars stacked by status (`statuses` gives the order of `row.counts`, bottom
/// first).
pub fn activity_chart(rows: &[ActivityRow], statuses: &[String], span: ActivitySpan) -> Chart {
    let summary = activity_summary(rows, statuses, span);
    let mut svg = String::new();
    let drawn = draw_activity(&mut svg, rows, statuses, span);
    finish(svg, drawn, summary, "activity")
}

fn activity_summary(rows: &[ActivityRow], statuses: &[String], span: ActivitySpan) -> String {
    let total: i64 = rows.iter().map(|r| r.total).sum();
    let mut out = format!(
        "{}, stacked by status: {} in total",
        span.describe(rows.len()),
        count(total)
    );
    let per_status: Vec<String> = statuses
        .iter()
        .enumerate()
        .filter_map(|(k, s)| {
            let n: i64 = rows.iter().map(|r| r.counts.get(k).copied().unwrap_or(0)).sum();
            (n > 0).then(|| format!("{} {s}", count(n)))
        })
        .collect();
    if !per_status.is_empty() {
        out.push_str(&format!(" ({})", per_status.join(", ")));
    }
    if let Some(busiest) = rows.iter().filter(|r| r.total > 0).max_by_key(|r| r.total) {
        out.push_str(&format!(
            "; the busiest {} was {} with {}",
            span.unit(),
            busiest.label,
            count(busiest.total)
        ));
    }
    out.push('.');
    out
}

fn draw_activity(
    svg: &mut String,
    rows: &[ActivityRow],
    statuses: &[String],
    span: ActivitySpan,
) -> Result<(), Box<dyn std::error::Error>> {
    let bars = rows.len().max(1) as i32;
    let max = rows.iter().map(|r| r.total).max().unwrap_or(0);
    let (y_max, y_step) = count_axis(max);
    let every = span.label_every(rows.len()) as i32;
    let root = SVGBackend::with_string(svg, (WIDTH, 260)).into_drawing_area();
    let mut chart = ChartBuilder::on(&root)
        .margin(8)
        .margin_right(16)
        .x_label_area_size(28)
        .y_label_area_size(48)
        .build_cartesian_2d((0..bars - 1).into_segmented(), 0i64..y_max)?;
    let x_label = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) if *i % every == 0 || *i == bars - 1 => {
            rows.get(*i as usize).map(|r| r.label.clone()).unwrap_or_default()
        }
        _ => String::new(),
    };
    let y_label = |v: &i64| count(*v);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .bold_line_style(GRID.color())
        .light_line_style(TRANSPARENT)
        .axis_style(AXIS.color())
        .x_labels(rows.len())
        .x_label_formatter(&x_label)
        .y_labels((y_max / y_step + 1) as usize)
        .y_label_formatter(&y_label)
        .label_style(("sans-serif", 14).into_font().color(&TEXT.color()))
        .draw()?;
    for (i, row) in rows.iter().enumerate() {
        let i = i as i32;
        let mut base = 0i64;
        for (k, &n) in row.counts.iter().enumerate() {
            if n <= 0 {
                continue;
            }
            let paint = status_paint(statuses.get(k).map(String::as_str).unwrap_or(OTHER));
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), base),
                    (SegmentValue::Exact(i + 1), base + n),
                ],
                paint.color().filled(),
            );
            bar.set_margin(0, 0, 2, 2);
            chart.draw_series(std::iter::once(bar))?;
            base += n;
        }
    }
    root.present()?;
    Ok(())
}

/// Execution-time percentiles per pipeline as a dot plot on a logarithmic axis: one row per pipeline (busiest
/// on top), a line from p50 to p99, a circle at p50, a triangle at p95 and a cross at p99.
pub fn percentile_chart(rows: &[PipelinePercentiles]) -> Chart {
    let rows: Vec<&PipelinePercentiles> = rows
        .iter()
        .filter(|r| r.percentiles.p50.is_some() && r.percentiles.p99.is_some())
        .collect();
    if rows.is_empty() {
        return Chart {
            svg: String::new(),
            summary: "No run has an execution time yet.".into(),
        };
    }
    let slowest = rows
        .iter()
        .max_by(|a, b| {
            a.percentiles
                .p99
                .partial_cmp(&b.percentiles.p99)
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .expect("rows is not empty");
    let summary = format!(
        "Execution-time percentiles (p50, p95, p99) of {} pipeline{} on a logarithmic time axis; the highest p99 \
         is {}’s at {}.",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        slowest.pipeline_id,
        slowest.percentiles.p99.map(duration_ms).unwrap_or_default()
    );
    let mut svg = String::new();
    let drawn = draw_percentiles(&mut svg, &rows);
    finish(svg, drawn, summary, "percentiles")
}

fn draw_percentiles(
    svg: &mut String,
    rows: &[&PipelinePercentiles],
) -> Result<(), Box<dyn std::error::Error>> {
    let n = rows.len() as i32;
    let values = rows.iter().flat_map(|r| {
        [r.percentiles.p50, r.percentiles.p95, r.percentiles.p99]
            .into_iter()
            .flatten()
    });
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let lo = nice_floor(lo.max(1.0) * 0.9);
    let hi = nice_ceil(hi.max(lo * 2.0) * 1.1);
    let ticks = log_ticks(lo, hi);
    let height = 56 + 34 * rows.len() as u32;
    let root = SVGBackend::with_string(svg, (WIDTH, height)).into_drawing_area();
    let label_width = rows
        .iter()
        .map(|r| short_name(&r.pipeline_id).chars().count())
        .max()
        .unwrap_or(8) as u32;
    let mut chart = ChartBuilder::on(&root)
        .margin(8)
        .margin_right(24)
        .x_label_area_size(30)
        .y_label_area_size((label_width * 8 + 16).clamp(60, 260))
        .build_cartesian_2d(
            (lo..hi).log_scale().with_key_points(ticks.clone()),
            (0..n - 1).into_segmented(),
        )?;
    // Row 0 at the bottom: put the busiest pipeline (first in `rows`) on top.
    let row_of = |i: i32| (n - 1 - i) as usize;
    let y_label = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) => rows
            .get(row_of(*i))
            .map(|r| short_name(&r.pipeline_id))
            .unwrap_or_default(),
        _ => String::new(),
    };
    let x_label = |v: &f64| short_ms(*v);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .bold_line_style(GRID.color())
        .light_line_style(TRANSPARENT)
        .axis_style(AXIS.color())
        .y_labels(rows.len())
        .y_label_formatter(&y_label)
        .x_labels(ticks.len())
        .x_label_formatter(&x_label)
        .label_style(("sans-serif", 14).into_font().color(&TEXT.color()))
        .draw()?;
    for i in 0..n {
        let p = &rows[row_of(i)].percentiles;
        let y = SegmentValue::CenterOf(i);
        let (Some(p50), Some(p99)) = (p.p50, p.p99) else {
            continue;
        };
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(p50, y.clone()), (p99, y.clone())],
            AXIS.color().stroke_width(2),
        )))?;
        chart.draw_series(std::iter::once(Circle::new(
            (p50, y.clone()),
            6,
            P50.color().filled(),
        )))?;
        if let Some(p95) = p.p95 {
            chart.draw_series(std::iter::once(TriangleMarker::new(
                (p95, y.clone()),
                7,
                P95.color().filled(),
            )))?;
        }
        chart.draw_series(std::iter::once(Cross::new(
            (p99, y.clone()),
            6,
            P99.color().stroke_width(3),
        )))?;
    }
    root.present()?;
    Ok(())
}

/// Turns plotters' SVG into the inline chart: accessible name, classes for theming, size from CSS.
fn finish(svg: String, drawn: Result<(), Box<dyn std::error::Error>>, summary: String, kind: &str) -> Chart {
    if let Err(error) = drawn {
        tracing::error!(%error, kind, "drawing a chart failed");
        return Chart {
            svg: String::new(),
            summary,
        };
    }
    Chart {
        svg: themeable(&svg, &summary, kind),
        summary,
    }
}

/// Rewrites the `<svg>` opening tag (no fixed size: the viewBox keeps the proportions; `role="img"` and an
/// `aria-label`; a `<title>`) and adds a class to every element painted with a known colour.
fn themeable(svg: &str, summary: &str, kind: &str) -> String {
    let Some(open_end) = svg.find('>') else {
        return String::new();
    };
    let open = &svg[..open_end];
    let view_box = attribute(open, "viewBox").unwrap_or("0 0 760 260");
    let label = escape(summary);
    let mut out = String::with_capacity(svg.len() + 4096);
    out.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"{view_box}\" class=\"chart-svg chart-{kind}\" \
         role=\"img\" aria-label=\"{label}\" focusable=\"false\"><title>{label}</title>"
    ));
    let paints: Vec<(String, &'static str)> = all_paints().map(|p| (p.hex(), p.name)).collect();
    let mut rest = &svg[open_end + 1..];
    while let Some(start) = rest.find('<') {
        out.push_str(rest[..start].trim());
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        let tag = &rest[start..start + len + 1];
        out.push_str(&classify(tag, &paints));
        rest = &rest[start + len + 1..];
    }
    out
}

/// `tag` with `class="f-<name>"` (fill) or `class="s-<name>"` (stroke) for the first known colour in it.
fn classify(tag: &str, paints: &[(String, &'static str)]) -> String {
    for (attr, prefix) in [("fill", "f"), ("stroke", "s")] {
        if let Some(value) = attribute(tag, attr) {
            if let Some((_, name)) = paints.iter().find(|(hex, _)| hex.eq_ignore_ascii_case(value)) {
                let name_end = tag.find([' ', '/', '>']).unwrap_or(tag.len());
                return format!(
                    "{} class=\"{prefix}-{name}\"{}",
                    &tag[..name_end],
                    &tag[name_end..]
                );
            }
        }
    }
    tag.to_string()
}

/// The value of `name="…"` in a tag.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let marker = format!(" {name}=\"");
    let start = tag.find(&marker)? + marker.len();
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round upper bound for a count axis, with a bit of headroom, and the step between its labels: the step is 1, 2
/// or 5 times a power of ten, about a fifth of the bound.
fn count_axis(max: i64) -> (i64, i64) {
    let target = (max + max / 10).max(1);
    let step = nice_ceil(target as f64 / 5.0).max(1.0) as i64;
    (
        target.div_euclid(step) * step + if target % step == 0 { 0 } else { step },
        step,
    )
}

/// The largest 1, 2 or 5 times a power of ten at or below `v` (> 0).
fn nice_floor(v: f64) -> f64 {
    let decade = 10f64.powf(v.log10().floor());
    [5.0, 2.0, 1.0]
        .into_iter()
        .map(|m| m * decade)
        .find(|c| *c <= v * (1.0 + 1e-9))
        .unwrap_or(decade)
}

/// The smallest 1, 2 or 5 times a power of ten at or above `v` (> 0).
fn nice_ceil(v: f64) -> f64 {
    let decade = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * decade)
        .find(|c| *c >= v * (1.0 - 1e-9))
        .unwrap_or(decade * 10.0)
}

/// Ticks of a logarithmic axis from `lo` to `hi`: 1-2-5 of each decade, or 1-3, or decades (every other one if
/// need be), whichever first makes at most nine.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let first = lo.log10().floor() as i32;
    let last = hi.log10().ceil() as i32;
    let within = |t: &f64| *t >= lo * (1.0 - 1e-9) && *t <= hi * (1.0 + 1e-9);
    for multiples in [&[1.0, 2.0, 5.0][..], &[1.0, 3.0][..]] {
        let ticks: Vec<f64> = (first..=last)
            .flat_map(|k| multiples.iter().map(move |m| m * 10f64.powi(k)))
            .filter(within)
            .collect();
        if ticks.len() <= 9 {
            return ticks;
        }
    }
    let decades: Vec<f64> = (first..=last).map(|k| 10f64.powi(k)).filter(within).collect();
    let every = decades.len().div_ceil(9).max(1);
    decades.into_iter().step_by(every).collect()
}

/// Axis labels of the logarithmic time axis (its ticks are powers of ten in ms): `100 ms`, `10 s`, `1,000 s`,
/// `2.8 h`. Seconds rather than minutes up to 10,000 s, so the decades read evenly.
fn short_ms(ms: f64) -> String {
    let fmt = |v: f64, unit: &str| {
        if (v - v.round()).abs() < 1e-9 {
            format!("{} {unit}", count(v.round() as i64))
        } else {
            format!("{v:.1} {unit}")
        }
    };
    if ms < 1000.0 {
        fmt(ms, "ms")
    } else if ms < 10_000_000.0 {
        fmt(ms / 1000.0, "s")
    } else {
        fmt(ms / 3_600_000.0, "h")
    }
}

/// Pipeline ids on the axis, cut at 28 characters.
fn short_name(name: &str) -> String {
    if name.chars().count() > 28 {
        let cut: String = name.chars().take(27).collect();
        format!("{cut}…")
    } else if name.is_empty() {
        "(none)".into()
    } else {
        name.to_string()
    }
}

// ---- The Pipelines page's trend (issue 15) ----

/// The trend charts of the Pipelines page: runs per day stacked by status, the failure rate of finished runs per
/// day, and the p95 execution time per day; the two line charts carry the previous period's figure as a dashed
/// line. `subject` (`all pipelines`, `pipeline NAME`) goes into the summaries, escaped where it reaches the SVG.
pub fn trend_charts(
    rows: &[crate::server::pipelines::TrendRow],
    statuses: &[String],
    subject: &str,
    previous: &crate::server::pipelines::PeriodView,
) -> (Chart, Chart, Chart) {
    let bars: Vec<ActivityRow> = rows
        .iter()
        .map(|r| ActivityRow {
            start: r.day.clone(),
            label: r.day.get(5..).unwrap_or(&r.day).to_string(),
            counts: r.counts.clone(),
            total: r.runs,
        })
        .collect();
    let total: i64 = rows.iter().map(|r| r.runs).sum();
    let runs_summary = format!(
        "Runs of {subject} per day (UTC, by last update) over the last {} days, stacked by status: {} in total.",
        rows.len(),
        count(total)
    );
    let mut svg = String::new();
    let drawn = draw_activity(&mut svg, &bars, statuses, ActivitySpan::Days);
    let runs = finish(svg, drawn, runs_summary, "trend-runs");

    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    let rates: Vec<Option<f64>> = rows.iter().map(|r| r.failure_rate.map(|v| v * 100.0)).collect();
    let rate_summary = format!(
        "Failure rate of finished runs of {subject} per day, in percent{}.",
        previous
            .failure_rate
            .map(|r| format!("; the previous period's: {}", crate::format::percent(r)))
            .unwrap_or_default()
    );
    let rate = line_chart(
        &labels,
        &rates,
        previous.failure_rate.map(|v| v * 100.0),
        &|v| format!("{v:.0} %"),
        rate_summary,
        "trend-rate",
        &P99,
    );
    let p95s: Vec<Option<f64>> = rows.iter().map(|r| r.p95_ms).collect();
    let p95_summary = format!(
        "p95 execution time of {subject} per day{}.",
        previous
            .p95_ms
            .map(|v| format!("; the previous period's: {}", duration_ms(v)))
            .unwrap_or_default()
    );
    let p95 = line_chart(
        &labels,
        &p95s,
        previous.p95_ms,
        &|v| short_ms(v),
        p95_summary,
        "trend-p95",
        &P95,
    );
    (runs, rate, p95)
}

/// One value per day as a line with points (days without a value are gaps), from 0 up, and `reference` as a
/// dashed horizontal line.
fn line_chart(
    labels: &[String],
    values: &[Option<f64>],
    reference: Option<f64>,
    y_fmt: &dyn Fn(f64) -> String,
    summary: String,
    kind: &str,
    paint: &Paint,
) -> Chart {
    let mut svg = String::new();
    let drawn = draw_line(&mut svg, labels, values, reference, y_fmt, paint);
    finish(svg, drawn, summary, kind)
}

fn draw_line(
    svg: &mut String,
    labels: &[String],
    values: &[Option<f64>],
    reference: Option<f64>,
    y_fmt: &dyn Fn(f64) -> String,
    paint: &Paint,
) -> Result<(), Box<dyn std::error::Error>> {
    let n = labels.len().max(1) as i32;
    let top = values
        .iter()
        .flatten()
        .copied()
        .chain(reference)
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let y_max = if top > 0.0 { nice_ceil(top * 1.1) } else { 1.0 };
    let every = (labels.len() / 8).max(1) as i32;
    let root = SVGBackend::with_string(svg, (WIDTH, 200)).into_drawing_area();
    let mut chart = ChartBuilder::on(&root)
        .margin(8)
        .margin_right(16)
        .x_label_area_size(28)
        .y_label_area_size(64)
        .build_cartesian_2d(0..n - 1, 0f64..y_max)?;
    let x_label = |i: &i32| {
        if *i % every == 0 || *i == n - 1 {
            labels.get(*i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let y_label = |v: &f64| y_fmt(*v);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .bold_line_style(GRID.color())
        .light_line_style(TRANSPARENT)
        .axis_style(AXIS.color())
        .x_labels(labels.len().min(31))
        .x_label_formatter(&x_label)
        .y_labels(5)
        .y_label_formatter(&y_label)
        .label_style(("sans-serif", 14).into_font().color(&TEXT.color()))
        .draw()?;
    if let Some(r) = reference.filter(|r| r.is_finite()) {
        chart.draw_series(DashedLineSeries::new(
            [(0, r), (n - 1, r)],
            6,
            4,
            AXIS.color().stroke_width(2),
        ))?;
    }
    // Runs of consecutive days with a value, each a line.
    let mut run: Vec<(i32, f64)> = Vec::new();
    let mut runs: Vec<Vec<(i32, f64)>> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match v.filter(|v| v.is_finite()) {
            Some(v) => run.push((i as i32, v)),
            None if !run.is_empty() => runs.push(std::mem::take(&mut run)),
            None => {}
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    for r in &runs {
        chart.draw_series(LineSeries::new(r.iter().copied(), paint.color().stroke_width(2)))?;
        chart.draw_series(
            r.iter()
                .map(|(x, y)| Circle::new((*x, *y), 3, paint.color().filled())),
        )?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Percentiles;

    fn statuses() -> Vec<String> {
        ["running", "paused", "completed", "failed", "cancelled", "other"]
            .map(String::from)
            .to_vec()
    }

    fn rows(n: usize) -> Vec<ActivityRow> {
        (0..n)
            .map(|i| {
                let counts = vec![i as i64 % 2, 0, 3, i as i64 % 3, 0, 0];
                ActivityRow {
                    start: format!("2026-11-27T{i:02}:00:00Z"),
                    label: format!("{i:02}:00"),
                    total: counts.iter().sum(),
                    counts,
                }
            })
            .collect()
    }

    #[test]
    fn activity_charts_are_accessible_themeable_svg() {
        let chart = activity_chart(&rows(24), &statuses(), ActivitySpan::Hours);
        let svg = &chart.svg;
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 760 260\""),
            "{svg}"
        );
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains(&format!("aria-label=\"{}\"", escape(&chart.summary))));
        assert!(svg.contains("<title>"));
        assert!(
            svg.ends_with("</svg>"),
            "a whole element: {}",
            &svg[svg.len() - 40..]
        );
        assert!(!svg.contains(" width=\"760\""), "the size comes from CSS");
        assert!(
            svg.contains("class=\"f-completed\""),
            "bars are repainted by status class"
        );
        assert!(svg.contains("class=\"f-failed\""));
        assert!(
            svg.contains("class=\"f-text\""),
            "labels follow the theme's text colour"
        );
        assert!(
            svg.contains(">00:00<") || svg.contains(">00:00\n<") || svg.contains("00:00"),
            "hour labels"
        );
        assert_eq!(svg.matches("<svg").count(), 1);
        assert!(chart
            .summary
            .starts_with("Runs created per hour over the last 24 hours (UTC), stacked by status"));
        assert!(chart.summary.contains("72 completed"), "{}", chart.summary);
    }

    #[test]
    fn an_empty_activity_chart_still_draws() {
        let empty: Vec<ActivityRow> = (0..30)
            .map(|i| ActivityRow {
                start: String::new(),
                label: format!("d{i}"),
                counts: vec![0; 6],
                total: 0,
            })
            .collect();
        let chart = activity_chart(&empty, &statuses(), ActivitySpan::Days);
        assert!(chart.svg.starts_with("<svg"), "{}", chart.summary);
        assert!(chart.summary.contains("0 in total"));
    }

    #[test]
    fn percentile_charts_mark_each_pipeline() {
        let p = |a: f64, b: f64, c: f64| Percentiles {
            count: 10,
            p50: Some(a),
            p95: Some(b),
            p99: Some(c),
            max: Some(c),
            relative_error: 0.0,
        };
        let rows = vec![
            PipelinePercentiles {
                pipeline_id: "sql-agent".into(),
                percentiles: p(900.0, 40_000.0, 200_000.0),
            },
            PipelinePercentiles {
                pipeline_id: "a<b>".into(),
                percentiles: p(90.0, 400.0, 2_000.0),
            },
        ];
        let chart = percentile_chart(&rows);
        assert!(chart.svg.contains("class=\"f-p50\""), "p50 circles");
        assert!(chart.svg.contains("class=\"f-p95\""), "p95 triangles");
        assert!(chart.svg.contains("class=\"s-p99\""), "p99 crosses");
        assert!(chart.svg.contains("sql-agent"));
        assert!(chart.svg.contains("a&lt;b&gt;"), "names are escaped");
        assert!(
            chart.summary.contains("sql-agent’s at 3 min 20 s"),
            "{}",
            chart.summary
        );
        assert_eq!(percentile_chart(&[]).svg, "");
    }

    #[test]
    fn helpers() {
        assert_eq!(count_axis(0), (1, 1));
        assert_eq!(count_axis(4), (4, 1));
        assert_eq!(count_axis(9), (10, 2));
        assert_eq!(count_axis(36), (40, 10));
        assert_eq!(count_axis(190), (250, 50));
        assert_eq!(nice_floor(1800.0), 1000.0);
        assert_eq!(nice_floor(2500.0), 2000.0);
        assert_eq!(nice_ceil(55_000.0), 100_000.0);
        assert_eq!(nice_ceil(4_100.0), 5_000.0);
        assert_eq!(
            log_ticks(10_000.0, 100_000.0),
            vec![10_000.0, 20_000.0, 50_000.0, 100_000.0]
        );
        assert_eq!(
            log_ticks(50.0, 500_000.0),
            vec![100.0, 300.0, 1_000.0, 3_000.0, 10_000.0, 30_000.0, 100_000.0, 300_000.0]
        );
        assert_eq!(
            log_ticks(1.0, 1e9),
            vec![1.0, 100.0, 10_000.0, 1e6, 1e8],
            "every other decade when even decades make too many"
        );
        assert_eq!(short_ms(100.0), "100 ms");
        assert_eq!(short_ms(10_000.0), "10 s");
        assert_eq!(short_ms(1_000_000.0), "1,000 s");
        assert_eq!(short_ms(36_000_000.0), "10 h");
        assert_eq!(
            classify(
                "<rect x=\"1\" fill=\"#A40E26\" stroke=\"none\"/>",
                &[("#A40E26".into(), "failed")]
            ),
            "<rect class=\"f-failed\" x=\"1\" fill=\"#A40E26\" stroke=\"none\"/>"
        );
    }
}
