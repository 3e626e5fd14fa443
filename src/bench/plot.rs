//! Latency over time as one self-contained SVG, written by hand (no fonts, no plotting crate: the
//! picture is dots, lines and a few labels, and any browser renders it).
//!
//! Each call is a dot at (scheduled send time, latency) on a log-scale latency axis, answered calls
//! in blue and failed ones in red, with dashed lines at p50, p99 and max. Above
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
const TOP: f64 = 104.0;
const BOTTOM: f64 = 680.0;

/// Side of a density cell, px.
const CELL: f64 = 3.0;
/// Shades of a density map.
const SHADES: usize = 8;

const ANSWERED: &str = "#2166ac";
const FAILED: &str = "#d7301f";

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
    /// First line of the title: the run's parameters.
    pub title: &'a str,
    /// Second line: its results.
    pub subtitle: &'a str,
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
    /// log10 of the lowest and highest latency shown (whole decades).
    lo: i32,
    hi: i32,
}

impl Axes {
    fn x(&self, seconds: f64) -> f64 {
        LEFT + (seconds / self.x_max).clamp(0.0, 1.0) * (RIGHT - LEFT)
    }

    fn y(&self, seconds: f64) -> f64 {
        let span = f64::from(self.hi - self.lo);
        let pos = (seconds.max(1e-7).log10() - f64::from(self.lo)) / span;
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
        let _ = writeln!(
            svg,
            r##"<text x="{LEFT}" y="52" font-size="13" fill="#333333">{}</text>"##,
            escape(self.subtitle)
        );
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
            // The histogram's floor is 1 µs: nothing below needs a decade.
            let lo = min.max(1e-6).log10().floor() as i32;
            let hi = max.log10().ceil() as i32;
            (lo, hi.max(lo + 1))
        } else {
            (-4, 0)
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
        let failed = self.samples.iter().filter(|s| s.failed).count();
        let answered = self.samples.len() - failed;
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
            r##"<g font-size="13"><circle cx="{}" cy="76" r="4" fill="{ANSWERED}"/><text x="{}" y="80">answered ({answered})</text><circle cx="{}" cy="76" r="4" fill="{FAILED}"/><text x="{}" y="80">failed ({failed})</text><text x="{}" y="80" fill="#555555">{how}</text></g>"##,
            LEFT + 4.0,
            LEFT + 14.0,
            LEFT + 154.0,
            LEFT + 164.0,
            LEFT + 290.0,
        );
    }

    fn dots(&self, svg: &mut String, axes: &Axes) {
        let width = if self.samples.len() > 5_000 { 2 } else { 3 };
        for (failed, colour) in [(false, ANSWERED), (true, FAILED)] {
            let mut d = String::new();
            for s in self.samples.iter().filter(|s| s.failed == failed) {
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
        for (failed, colour) in [(false, ANSWERED), (true, FAILED)] {
            let mut counts = vec![0u32; cols * rows];
            for s in self.samples.iter().filter(|s| s.failed == failed) {
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
    for decade in axes.lo..=axes.hi {
        let base = 10f64.powi(decade);
        let y = axes.y(base);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{RIGHT}" y1="{y:.1}" y2="{y:.1}" stroke="#bbbbbb"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 8.0,
            y + 4.0,
            decade_label(decade)
        );
        if decade < axes.hi {
            for m in 2..10 {
                let y = axes.y(base * f64::from(m));
                let _ = write!(
                    svg,
                    r##"<line x1="{LEFT}" x2="{RIGHT}" y1="{y:.1}" y2="{y:.1}" stroke="#eeeeee"/>"##
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

/// `1 µs`, `10 ms`, `1 s`, `100 s` for 10^decade seconds.
fn decade_label(decade: i32) -> String {
    let (unit, exp) = match decade {
        ..=-4 => ("µs", decade + 6),
        -3..=-1 => ("ms", decade + 3),
        _ => ("s", decade),
    };
    format!("{} {unit}", 10u64.pow(exp.clamp(0, 18) as u32))
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
            subtitle: "s",
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
            })
            .collect()
    }

    #[test]
    fn one_dot_per_call_below_the_limit() {
        let svg = plot(&samples(1000), 20_000);
        assert_eq!(svg.matches("h0").count(), 1000);
        assert!(svg.contains("t &lt;&amp;&gt;"));
        assert!(svg.contains("p99 900 ms"));
        assert!(svg.contains(">1 ms<") && svg.contains(">1 s<"));
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
    fn ticks_and_decades_read_well() {
        assert_eq!(tick_step(3.0), 0.5);
        assert_eq!(tick_step(60.0), 10.0);
        assert_eq!(decade_label(-6), "1 µs");
        assert_eq!(decade_label(-4), "100 µs");
        assert_eq!(decade_label(-2), "10 ms");
        assert_eq!(decade_label(0), "1 s");
        assert_eq!(decade_label(2), "100 s");
    }
}
