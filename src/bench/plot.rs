//! Latency over time as one self-contained SVG, written by hand (no fonts, no plotting crate: the
//! picture is dots, lines and a few labels, and any browser renders it).
//!
//! Each call is a dot at (scheduled send time, latency) on a log-scale latency axis, answered calls
//! in blue, those the client itself sent late in purple (the client, not the server, was behind)
//! and failed ones in red, with dashed lines at p50, p99 and max. Above
//! [`LatencyPlot::dot_limit`] calls a dot per call makes a file of megabytes that browsers draw
//! slowly, so the plot becomes a density map: the plot area is cut into 3×3 px cells and each cell
//! with calls is filled, darker the more calls it holds (8 shades on a log scale). A 60,000-call
//! run is then a few hundred KB at most, whatever its shape.

use std::fmt::Write;

use super::open_loop::{fmt_latency, Sample};

/// The picture's size and the plot area inside it, in px.
const WIDTH: f64 = 1200.0;
const HEIGHT: f64 = 760.0;
const LEFT: f64 = 96.0;
const RIGHT: f64 = 1040.0;
const TOP: f64 = 116.0;
const BOTTOM: f64 = 680.0;

/// Side of a density cell, px.
const CELL: f64 = 3.0;
/// Shades of a density map.
const SHADES: usize = 8;

/// The series, drawn in this order (failures on top), each with its colour and legend text.
const SERIES: [(&str, &str); 3] = [
    ("#2166ac", "answered"),
    ("#a65fc9", "answered, sent late (client behind)"),
    ("#d7301f", "failed"),
];

/// Which of [`SERIES`] a call belongs to.
fn series(s: &Sample) -> usize {
    match (s.failed, s.late) {
        (true, _) => 2,
        (false, true) => 1,
        (false, false) => 0,
    }
}

/// A horizontal line at a latency (a percentile).
#[derive(Debug, Clone, Copy)]
pub(super) struct Line {
    /// Its label: `p50`, `p99`, `max`.
    pub name: &'static str,
    /// The latency it marks, seconds.
    pub seconds: f64,
    /// Its colour (SVG).
    pub colour: &'static str,
}

/// What the plot shows.
#[derive(Debug)]
pub(super) struct LatencyPlot<'a> {
    /// The title: the mode and the load.
    pub title: &'a str,
    /// The line under it: the run's other parameters.
    pub parameters: &'a str,
    /// The line under that: its results.
    pub results: &'a str,
    /// The time axis runs from 0 to this (seconds), or to the last call if later.
    pub x_max: f64,
    /// One per call.
    pub samples: &'a [Sample],
    /// Percentile lines.
    pub lines: &'a [Line],
    /// Above this many calls, a density map instead of dots.
    pub dot_limit: usize,
}

/// Maps data to px.
struct Axes {
    x_max: f64,
    /// log10 of the lowest and highest latency shown (1, 2 or 5 × 10^k seconds).
    lo: f64,
    hi: f64,
}

impl Axes {
    fn x(&self, seconds: f64) -> f64 {
        LEFT + (seconds / self.x_max).clamp(0.0, 1.0) * (RIGHT - LEFT)
    }

    fn y(&self, seconds: f64) -> f64 {
        let pos = (seconds.max(1e-7).log10() - self.lo) / (self.hi - self.lo);
        BOTTOM - pos.clamp(0.0, 1.0) * (BOTTOM - TOP)
    }
}

impl LatencyPlot<'_> {
    /// The SVG document.
    pub fn render(&self) -> String {
        let axes = self.axes();
        let mut svg =
            String::with_capacity(64 * 1024 + self.samples.len().min(self.dot_limit) * 16);
        let _ = writeln!(
            svg,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"##
        );
        let _ = writeln!(
            svg,
            r##"<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##
        );
        let _ = writeln!(
            svg,
            r##"<text x="{LEFT}" y="28" font-size="17" font-weight="bold">{}</text>"##,
            escape(self.title)
        );
        for (y, text) in [(50, self.parameters), (70, self.results)] {
            let _ = writeln!(
                svg,
                r##"<text x="{LEFT}" y="{y}" font-size="13" fill="#333333">{}</text>"##,
                escape(text)
            );
        }
        self.legend(&mut svg);
        grid(&mut svg, &axes);
        if self.samples.len() <= self.dot_limit {
            self.dots(&mut svg, &axes);
        } else {
            self.density(&mut svg, &axes);
        }
        self.percentile_lines(&mut svg, &axes);
        let _ = writeln!(
            svg,
            r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#444444"/>"##,
            RIGHT - LEFT,
            BOTTOM - TOP
        );
        svg.push_str("</svg>\n");
        svg
    }

    fn axes(&self) -> Axes {
        let latencies = self
            .samples
            .iter()
            .map(|s| f64::from(s.latency))
            .chain(self.lines.iter().map(|l| l.seconds))
            .filter(|&s| s > 0.0 && s.is_finite());
        let (min, max) = latencies.fold((f64::INFINITY, 0.0f64), |(lo, hi), s| {
            (lo.min(s), hi.max(s))
        });
        let (lo, hi) = if max > 0.0 {
            // The histogram's floor is 1 µs: nothing below needs showing.
            let lo = Round::at_most(min.max(1e-6)).seconds().log10();
            let hi = Round::at_least(max).seconds().log10();
            // At least a decade, so that a run of equal latencies still has an axis.
            (lo.min(hi - 1.0), hi)
        } else {
            (-4.0, 0.0)
        };
        let last = self
            .samples
            .iter()
            .map(|s| f64::from(s.at))
            .fold(0.0f64, f64::max);
        Axes {
            x_max: self.x_max.max(last).max(1e-3),
            lo,
            hi,
        }
    }

    fn legend(&self, svg: &mut String) {
        let mut counts = [0usize; SERIES.len()];
        for s in self.samples {
            counts[series(s)] += 1;
        }
        svg.push_str(r##"<g font-size="13">"##);
        let mut x = LEFT + 4.0;
        for ((colour, name), n) in SERIES.iter().zip(counts) {
            let text = format!("{name} ({n})");
            let _ = write!(
                svg,
                r##"<circle cx="{x}" cy="90" r="4" fill="{colour}"/><text x="{}" y="94">{}</text>"##,
                x + 10.0,
                escape(&text)
            );
            // About 7 px per character at 13 px.
            x += 10.0 + 7.0 * text.chars().count() as f64 + 20.0;
        }
        let how = if self.samples.len() <= self.dot_limit {
            "one dot per call".to_owned()
        } else {
            format!(
                "{} calls: density, darker = more calls per {CELL}×{CELL} px cell",
                self.samples.len()
            )
        };
        let _ = writeln!(
            svg,
            r##"<text x="{x}" y="94" fill="#555555">{how}</text></g>"##
        );
    }

    fn dots(&self, svg: &mut String, axes: &Axes) {
        let width = if self.samples.len() > 5_000 { 2 } else { 3 };
        for (which, (colour, _)) in SERIES.iter().enumerate() {
            let mut d = String::new();
            for s in self.samples.iter().filter(|s| series(s) == which) {
                let _ = write!(
                    d,
                    "M{:.1} {:.1}h0",
                    axes.x(f64::from(s.at)),
                    axes.y(f64::from(s.latency))
                );
            }
            if !d.is_empty() {
                let _ = writeln!(
                    svg,
                    r##"<path d="{d}" fill="none" stroke="{colour}" stroke-opacity="0.6" stroke-width="{width}" stroke-linecap="round"/>"##
                );
            }
        }
    }

    fn density(&self, svg: &mut String, axes: &Axes) {
        let cols = ((RIGHT - LEFT) / CELL).ceil() as usize;
        let rows = ((BOTTOM - TOP) / CELL).ceil() as usize;
        for (which, (colour, _)) in SERIES.iter().enumerate() {
            let mut counts = vec![0u32; cols * rows];
            for s in self.samples.iter().filter(|s| series(s) == which) {
                let col = (((axes.x(f64::from(s.at)) - LEFT) / CELL) as usize).min(cols - 1);
                let row = (((axes.y(f64::from(s.latency)) - TOP) / CELL) as usize).min(rows - 1);
                counts[row * cols + col] += 1;
            }
            let most = counts.iter().copied().max().unwrap_or(0);
            if most == 0 {
                continue;
            }
            let mut shades = vec![String::new(); SHADES];
            for (i, &n) in counts.iter().enumerate().filter(|(_, &n)| n > 0) {
                let shade = if most == 1 {
                    SHADES - 1
                } else {
                    ((f64::from(n).ln() / f64::from(most).ln()) * (SHADES - 1) as f64).round()
                        as usize
                };
                let (x, y) = (
                    LEFT + (i % cols) as f64 * CELL,
                    TOP + (i / cols) as f64 * CELL,
                );
                let _ = write!(shades[shade], "M{x} {y}h{CELL}v{CELL}h-{CELL}z");
            }
            for (shade, d) in shades.iter().enumerate().filter(|(_, d)| !d.is_empty()) {
                let opacity = 0.2 + 0.8 * shade as f64 / (SHADES - 1) as f64;
                let _ = writeln!(
                    svg,
                    r##"<path d="{d}" fill="{colour}" fill-opacity="{opacity:.2}"/>"##
                );
            }
        }
    }

    fn percentile_lines(&self, svg: &mut String, axes: &Axes) {
        // Labels at the right edge, pushed apart when their lines are close.
        let mut placed: Vec<(f64, &Line)> =
            self.lines.iter().map(|l| (axes.y(l.seconds), l)).collect();
        placed.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut label_y = f64::INFINITY;
        for (y, line) in placed {
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" x2="{RIGHT}" y1="{y:.1}" y2="{y:.1}" stroke="{}" stroke-width="1.5" stroke-dasharray="6 4"/>"##,
                line.colour
            );
            label_y = (y + 4.0).min(label_y - 15.0);
            let _ = writeln!(
                svg,
                r##"<text x="{}" y="{label_y:.1}" font-size="13" fill="{}">{} {}</text>"##,
                RIGHT + 8.0,
                line.colour,
                line.name,
                fmt_latency(Some(line.seconds))
            );
        }
    }
}

/// Gridlines, ticks and axis labels.
fn grid(svg: &mut String, axes: &Axes) {
    svg.push_str(r##"<g font-size="12" fill="#333333">"##);
    // Decades labelled, 2..9 × 10^k as light lines, and the two ends labelled when they are not decades.
    let inside = |v: f64| (axes.lo - 1e-9..=axes.hi + 1e-9).contains(&v.log10());
    for k in axes.lo.floor() as i32..=axes.hi.ceil() as i32 {
        for m in 1..10u8 {
            let round = Round { m, k };
            let v = round.seconds();
            if !inside(v) {
                continue;
            }
            let y = axes.y(v);
            let end = (v.log10() - axes.lo).abs() < 1e-9 || (v.log10() - axes.hi).abs() < 1e-9;
            let colour = if m == 1 { "#bbbbbb" } else { "#eeeeee" };
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" x2="{RIGHT}" y1="{y:.1}" y2="{y:.1}" stroke="{colour}"/>"##
            );
            if m == 1 || end {
                let _ = write!(
                    svg,
                    r##"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                    LEFT - 8.0,
                    y + 4.0,
                    round.label()
                );
            }
        }
    }
    let step = tick_step(axes.x_max);
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let mut i = 0u32;
    loop {
        let t = f64::from(i) * step;
        if t > axes.x_max * (1.0 + 1e-9) {
            break;
        }
        let x = axes.x(t);
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{BOTTOM}" stroke="#eeeeee"/><line x1="{x:.1}" x2="{x:.1}" y1="{BOTTOM}" y2="{}" stroke="#444444"/><text x="{x:.1}" y="{}" text-anchor="middle">{t:.decimals$}</text>"##,
            BOTTOM + 5.0,
            BOTTOM + 20.0
        );
        i += 1;
    }
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="middle" font-size="14">scheduled send time (s from the start)</text>"##,
        (LEFT + RIGHT) / 2.0,
        BOTTOM + 46.0
    );
    let _ = write!(
        svg,
        r##"<text transform="translate(24 {}) rotate(-90)" text-anchor="middle" font-size="14">latency from the scheduled send time (log scale)</text>"##,
        (TOP + BOTTOM) / 2.0
    );
    svg.push_str("</g>\n");
}

/// A step of 1, 2 or 5 × 10^k giving 5 to 10 ticks over `0..=max`.
fn tick_step(max: f64) -> f64 {
    let raw = max / 8.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// A round latency, `m` × 10^`k` seconds: the ends of the latency axis (m = 1, 2 or 5) and its lines.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Round {
    m: u8,
    k: i32,
}

impl Round {
    fn seconds(self) -> f64 {
        f64::from(self.m) * 10f64.powi(self.k)
    }

    /// The least 1, 2 or 5 × 10^k at or above `s` (> 0).
    fn at_least(s: f64) -> Round {
        let k = s.log10().floor() as i32;
        [1, 2, 5]
            .into_iter()
            .map(|m| Round { m, k })
            .find(|r| r.seconds() >= s * (1.0 - 1e-9))
            .unwrap_or(Round { m: 1, k: k + 1 })
    }

    /// The greatest 1, 2 or 5 × 10^k at or below `s` (> 0).
    fn at_most(s: f64) -> Round {
        let k = s.log10().floor() as i32;
        [5, 2, 1]
            .into_iter()
            .map(|m| Round { m, k })
            .find(|r| r.seconds() <= s * (1.0 + 1e-9))
            .unwrap_or(Round { m: 5, k: k - 1 })
    }

    /// `1 µs`, `200 µs`, `10 ms`, `2 s`, `100 s`.
    fn label(self) -> String {
        let (unit, exp) = match self.k {
            ..=-4 => ("µs", self.k + 6),
            -3..=-1 => ("ms", self.k + 3),
            _ => ("s", self.k),
        };
        format!(
            "{} {unit}",
            u64::from(self.m) * 10u64.pow(exp.clamp(0, 18) as u32)
        )
    }
}

/// Text for an SVG element.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plot(samples: &[Sample], dot_limit: usize) -> String {
        LatencyPlot {
            title: "t <&>",
            parameters: "p",
            results: "r",
            x_max: 3.0,
            samples,
            lines: &[Line {
                name: "p99",
                seconds: 0.9,
                colour: "#000000",
            }],
            dot_limit,
        }
        .render()
    }

    fn samples(n: usize) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                at: i as f32 * 3.0 / n as f32,
                latency: 1e-3 * (1 + i % 1000) as f32,
                failed: i % 100 == 0,
                late: i % 100 == 1,
            })
            .collect()
    }

    #[test]
    fn one_dot_per_call_below_the_limit() {
        let svg = plot(&samples(1000), 20_000);
        assert_eq!(svg.matches("h0").count(), 1000);
        assert!(svg.contains("t &lt;&amp;&gt;"));
        assert!(svg.contains("p99 900 ms"));
        // 1 ms to 1 s: the axis runs from 1 ms to 1 s, a label at each decade.
        for label in [">1 ms<", ">10 ms<", ">100 ms<", ">1 s<"] {
            assert!(svg.contains(label), "no {label}");
        }
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }

    #[test]
    fn many_calls_become_a_density_map_of_bounded_size() {
        let svg = plot(&samples(60_000), 20_000);
        assert!(svg.contains("density"));
        assert!(!svg.contains("h0"));
        assert!(svg.len() < 1_500_000, "{} bytes", svg.len());
    }

    #[test]
    fn ticks_and_round_latencies_read_well() {
        assert_eq!(tick_step(3.0), 0.5);
        assert_eq!(tick_step(60.0), 10.0);
        let label = |m, k| Round { m, k }.label();
        assert_eq!(label(1, -6), "1 µs");
        assert_eq!(label(2, -4), "200 µs");
        assert_eq!(label(1, -2), "10 ms");
        assert_eq!(label(5, -1), "500 ms");
        assert_eq!(label(2, 0), "2 s");
        assert_eq!(label(1, 2), "100 s");
        assert_eq!(Round::at_least(1.02), Round { m: 2, k: 0 });
        assert_eq!(Round::at_least(0.001), Round { m: 1, k: -3 });
        assert_eq!(Round::at_least(6e-3), Round { m: 1, k: -2 });
        assert_eq!(Round::at_most(160e-6), Round { m: 1, k: -4 });
        assert_eq!(Round::at_most(0.3), Round { m: 2, k: -1 });
    }
}
