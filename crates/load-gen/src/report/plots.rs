//! The report's plots, each drawn once as SVG and once as PNG by the same
//! code (plotters, generic over the backend).
//!
//! Text needs a font: plotters' `ab_glyph` feature renders a TrueType file
//! registered at run time (no system font library is linked). The font is
//! `$OCTOLLM_LOAD_FONT` or the first of a few usual system paths; with none
//! (or `OCTOLLM_LOAD_FONT=none`) the plots are drawn without any text, and
//! the report says so.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{PLOTS, PROCESS_PLOT, ReportData};

const SIZE: (u32, u32) = (1000, 480);

const FONT_PATHS: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// Registers a font once; false when none could be had.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let candidates: Vec<PathBuf> = match std::env::var_os("OCTOLLM_LOAD_FONT") {
            Some(v) if v == "none" => Vec::new(),
            Some(v) => vec![PathBuf::from(v)],
            None => FONT_PATHS.iter().map(PathBuf::from).collect(),
        };
        for path in candidates {
            if let Ok(bytes) = std::fs::read(&path) {
                // Registered fonts live for the whole process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

type Points = Vec<(f64, f64)>;

struct Line {
    label: &'static str,
    color: RGBColor,
    points: Points,
}

struct Panel<'a> {
    y_desc: &'a str,
    lines: Vec<Line>,
}

struct Chart<'a> {
    title: &'a str,
    x_desc: &'a str,
    /// Stacked top to bottom, sharing the x axis.
    panels: Vec<Panel<'a>>,
    /// Spectrum: x is −log10(1 − p), labelled as a percentile.
    percentile_x: bool,
}

const BLUE_: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREEN_: RGBColor = RGBColor(44, 160, 44);
const RED_: RGBColor = RGBColor(214, 39, 40);
const PURPLE: RGBColor = RGBColor(148, 103, 189);
const PALETTE: [RGBColor; 5] = [BLUE_, ORANGE, GREEN_, RED_, PURPLE];

fn percentile_label(x: &f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let digits = (x.round() as i64 - 2).clamp(0, 6) as usize;
    format!("{p:.digits$}%")
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    c: &Chart,
    text: bool,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let x_max = c
        .panels
        .iter()
        .flat_map(|p| p.lines.iter().flat_map(|l| l.points.iter()))
        .map(|p| p.0)
        .fold(0.0, f64::max)
        .max(1.0);
    let area = if text {
        root.titled(c.title, ("sans-serif", 22)).map_err(e)?
    } else {
        root.clone()
    };
    let areas = area.split_evenly((c.panels.len().max(1), 1));
    for (i, (panel, area)) in c.panels.iter().zip(areas).enumerate() {
        let last = i + 1 == c.panels.len();
        let y_max = panel
            .lines
            .iter()
            .flat_map(|l| l.points.iter())
            .map(|p| p.1)
            .fold(0.0, f64::max);
        let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
        let mut builder = ChartBuilder::on(&area);
        builder.margin(10);
        if text {
            builder
                .x_label_area_size(if last { 40 } else { 20 })
                .y_label_area_size(75);
        }
        let mut chart = builder
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(e)?;
        {
            let mut mesh = chart.configure_mesh();
            if text {
                mesh.y_desc(panel.y_desc).label_style(("sans-serif", 14));
                if last {
                    mesh.x_desc(c.x_desc);
                }
                if c.percentile_x {
                    mesh.x_labels(x_max.ceil() as usize + 1)
                        .x_label_formatter(&percentile_label);
                }
            } else {
                // No font: no labels, but a frame so stacked panels stay apart.
                mesh.x_labels(0).y_labels(0);
            }
            mesh.draw().map_err(e)?;
        }
        if !text {
            let (w, h) = area.dim_in_pixel();
            let frame = [(0, 0), (w as i32 - 1, h as i32 - 1)];
            area.draw(&Rectangle::new(frame, BLACK.stroke_width(1)))
                .map_err(e)?;
        }
        for line in &panel.lines {
            let color = line.color;
            let series = chart
                .draw_series(LineSeries::new(
                    line.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(e)?;
            if text {
                series.label(line.label).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            }
        }
        if text && !panel.lines.is_empty() {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(e)?;
        }
    }
    root.present().map_err(e)?;
    Ok(())
}

fn line(label: &'static str, color: RGBColor, points: Points) -> Line {
    Line {
        label,
        color,
        points,
    }
}

fn panel(y_desc: &'static str, lines: Vec<Line>) -> Panel<'static> {
    Panel { y_desc, lines }
}

fn charts(d: &ReportData) -> Vec<(&'static str, Chart<'static>)> {
    let t = |r: &crate::stats::SecondRow| r.t as f64;
    let rows = &d.series;
    let pick = |f: fn(&crate::stats::SecondRow) -> Option<f64>| -> Points {
        rows.iter()
            .filter_map(|r| f(r).map(|v| (t(r), v)))
            .collect()
    };
    let count = |f: fn(&crate::stats::SecondRow) -> u64| -> Points {
        rows.iter().map(|r| (t(r), f(r) as f64)).collect()
    };
    let mut out = vec![
        (
            "latency",
            Chart {
                title: "Latency per second (of the iterations ending in it)",
                x_desc: "seconds since start",
                panels: vec![panel(
                    "ms",
                    vec![
                        line("p50", BLUE_, pick(|r| r.p50_ms)),
                        line("p90", ORANGE, pick(|r| r.p90_ms)),
                        line("p99", RED_, pick(|r| r.p99_ms)),
                    ],
                )],
                percentile_x: false,
            },
        ),
        (
            "throughput",
            Chart {
                title: "Throughput and in flight",
                x_desc: "seconds since start",
                panels: vec![
                    panel(
                        "per second",
                        vec![
                            line("sent/s", BLUE_, count(|r| r.sent)),
                            line("completed/s", GREEN_, count(|r| r.completed)),
                        ],
                    ),
                    panel(
                        "in flight",
                        vec![line("in flight", PURPLE, count(|r| r.in_flight))],
                    ),
                ],
                percentile_x: false,
            },
        ),
        (
            "errors",
            Chart {
                title: "Errors, 429s and dropped iterations",
                x_desc: "seconds since start",
                panels: vec![panel(
                    "per second",
                    vec![
                        line("errors/s", RED_, count(|r| r.errors)),
                        line("429/s", ORANGE, count(|r| r.rate_limited)),
                        line("dropped/s", PURPLE, count(|r| r.dropped)),
                    ],
                )],
                percentile_x: false,
            },
        ),
        (
            "spectrum",
            Chart {
                title: "Latency by percentile",
                x_desc: "percentile",
                panels: vec![panel(
                    "ms",
                    vec![line(
                        "latency",
                        BLUE_,
                        d.spectrum
                            .iter()
                            .filter(|p| p.percentile < 100.0)
                            .map(|p| (-(1.0 - p.percentile / 100.0).log10(), p.latency_ms))
                            .collect(),
                    )],
                )],
                percentile_x: true,
            },
        ),
    ];
    if !d.processes.is_empty() {
        let series = |f: fn(&crate::sampler::Sample) -> f64, what: &str| -> Vec<Line> {
            d.processes
                .iter()
                .enumerate()
                .map(|(i, p)| Line {
                    // Leaked once per rendering: a handful of short names.
                    label: Box::leak(format!("{} {what}", p.name).into_boxed_str()),
                    color: PALETTE[i % PALETTE.len()],
                    points: p.samples.iter().map(|s| (s.t_s, f(s))).collect(),
                })
                .collect()
        };
        out.push((
            PROCESS_PLOT,
            Chart {
                title: "Sampled processes",
                x_desc: "seconds since start",
                panels: vec![
                    panel("RSS (MB)", series(|s| s.rss_bytes as f64 / 1e6, "RSS")),
                    panel("open fds", series(|s| s.fds as f64, "fds")),
                    panel("threads", series(|s| s.threads as f64, "threads")),
                ],
                percentile_x: false,
            },
        ));
    }
    out
}

/// Draws every plot into `dir`, adding the paths to `written`; a note for
/// the report when something could not be drawn as asked.
pub fn draw_all(dir: &Path, d: &ReportData, written: &mut Vec<PathBuf>) -> Option<String> {
    let text = font_ready();
    let mut problems = Vec::new();
    for (name, chart) in charts(d) {
        debug_assert!(PLOTS.contains(&name) || name == PROCESS_PLOT);
        let svg = dir.join(format!("{name}.svg"));
        match draw(
            SVGBackend::new(&svg, SIZE).into_drawing_area(),
            &chart,
            text,
        ) {
            Ok(()) => written.push(svg),
            Err(e) => problems.push(format!("{name}.svg: {e}")),
        }
        let png = dir.join(format!("{name}.png"));
        match draw(
            BitMapBackend::new(&png, SIZE).into_drawing_area(),
            &chart,
            text,
        ) {
            Ok(()) => written.push(png),
            Err(e) => problems.push(format!("{name}.png: {e}")),
        }
    }
    let mut note = Vec::new();
    if !text {
        note.push(
            "No TrueType font was found (set OCTOLLM_LOAD_FONT to a .ttf file), so the plots have no labels."
                .to_owned(),
        );
    }
    if !problems.is_empty() {
        note.push(format!(
            "Plots that could not be drawn: {}.",
            problems.join("; ")
        ));
    }
    (!note.is_empty()).then(|| note.join(" "))
}
