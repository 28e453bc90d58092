//! The report's charts as standalone SVG documents, drawn with plotters' SVG backend (text stays
//! `<text>` elements, so no fonts are embedded or fetched).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::stats::{ReliabilityBin, ThresholdCurve};
use crate::error::{Error, ErrorKind, Result};
use crate::eval::ClassMetrics;
use crate::train::{EpochRecord, StageReport};

/// Width of the standard charts, in pixels.
pub const WIDTH: u32 = 640;
/// Height of the standard charts, in pixels.
pub const HEIGHT: u32 = 380;
/// A scatter plot draws at most this many points (every k-th row past that).
pub const MAX_SCATTER_POINTS: usize = 5000;

const FONT: &str = "sans-serif";
const BLUE_: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREEN_: RGBColor = RGBColor(44, 160, 44);
const RED_: RGBColor = RGBColor(214, 39, 40);
const PURPLE: RGBColor = RGBColor(148, 103, 189);
const BROWN: RGBColor = RGBColor(140, 86, 75);
const GREY: RGBColor = RGBColor(127, 127, 127);
const SERIES: [RGBColor; 6] = [BLUE_, ORANGE, GREEN_, RED_, PURPLE, BROWN];

/// A drawn chart: its SVG document and how many data marks (elements of one SVG type) it
/// holds, which the page's self-check requires the browser to render.
#[derive(Debug, Clone)]
pub struct Chart {
    /// The SVG document.
    pub svg: String,
    /// The SVG element type of the data marks (`circle`, `rect`).
    pub mark: &'static str,
    /// How many data marks were drawn.
    pub marks: usize,
}

fn draw_err(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Internal, format!("drawing a report chart: {e}"))
}

/// Renders `draw` on a `w`×`h` SVG canvas and returns the document.
fn svg(
    w: u32,
    h: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>,
) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    Ok(out)
}

/// A padded [lo, hi] range over finite values (a unit range around a constant).
fn span(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// A range that holds `base` and every finite value, padded by 5% of the values' spread on a
/// side where a value lies outside `base` (fixed axes such as [0, 1] grow to show an outlier).
pub(crate) fn cover(base: (f64, f64), values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return base;
    }
    let pad = (hi.max(base.1) - lo.min(base.0)) * 0.05;
    (
        if lo < base.0 { lo - pad } else { base.0 },
        if hi > base.1 { hi + pad } else { base.1 },
    )
}

/// The x (epoch) and y ranges of an epoch chart: every point of every series and the best
/// epoch's marker, the y range padded (and not below 0 when no value is).
pub(crate) fn epoch_ranges(series: &[Series<'_>], stage: &StageReport) -> ((f64, f64), (f64, f64)) {
    let xs = series.iter().flat_map(|s| s.2.iter().map(|p| p.0));
    let (x0, x1) = xs
        .chain([
            1.0,
            stage.history.len() as f64,
            (stage.best_epoch + 1) as f64,
        ])
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
    // At least one epoch wide, so that a single point still has an axis.
    let x1 = x1.max(x0 + 1.0);
    let (y0, y1) = span(series.iter().flat_map(|s| s.2.iter().map(|p| p.1)));
    // Losses, F1 and RMSE are never negative: padding should not invent negative ticks.
    let nonnegative = series
        .iter()
        .flat_map(|s| s.2.iter())
        .filter(|p| p.1.is_finite())
        .all(|p| p.1 >= 0.0);
    let y0 = if nonnegative { y0.max(0.0) } else { y0 };
    ((x0, x1), (y0, y1))
}

/// At most `max` characters of `s`, with an ellipsis when cut.
fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn epoch_points(history: &[EpochRecord], f: impl Fn(&EpochRecord) -> f32) -> Vec<(f64, f64)> {
    history
        .iter()
        .filter(|r| f(r).is_finite())
        .map(|r| ((r.epoch + 1) as f64, f(r) as f64))
        .collect()
}

/// A named, coloured line of (x, y) points.
pub(crate) type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// A named, coloured bar value of a class.
type BarPart = (&'static str, RGBColor, fn(&ClassMetrics) -> f64);

/// A line (with point markers, so a single epoch still shows) per named series over epochs,
/// with a dashed vertical line at the stage's best epoch.
fn epoch_chart(
    title: &str,
    y_desc: &str,
    series: &[Series<'_>],
    stage: &StageReport,
) -> Result<Chart> {
    let marks = series.iter().map(|s| s.2.len()).sum();
    let ((x0, x1), (y0, y1)) = epoch_ranges(series, stage);
    svg(WIDTH, HEIGHT, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_desc)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(draw_err)?;
        let best = (stage.best_epoch + 1) as f64;
        chart
            .draw_series(DashedLineSeries::new(
                vec![(best, y0), (best, y1)],
                6,
                4,
                GREY.stroke_width(1),
            ))
            .map_err(draw_err)?
            .label(format!("best epoch ({best:.0})"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREY));
        for (name, color, pts) in series {
            let color = *color;
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(draw_err)?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(draw_err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .border_style(GREY)
            .background_style(WHITE.mix(0.85))
            .label_font((FONT, 13))
            .draw()
            .map_err(draw_err)
    })
    .map(|svg| Chart {
        svg,
        mark: "circle",
        marks,
    })
}

/// Training and validation loss per epoch of one stage.
pub fn loss_curves(stage: &StageReport) -> Result<Chart> {
    epoch_chart(
        &format!("{}: loss", stage.stage),
        "loss",
        &[
            (
                "train",
                BLUE_,
                epoch_points(&stage.history, |r| r.train_loss),
            ),
            (
                "valid",
                ORANGE,
                epoch_points(&stage.history, |r| r.valid_loss),
            ),
        ],
        stage,
    )
}

/// The validation metric per epoch of one stage; None when the stage recorded none.
pub fn metric_curve(stage: &StageReport, metric_name: &str) -> Result<Option<Chart>> {
    let pts = epoch_points(&stage.history, |r| r.metric.unwrap_or(f32::NAN));
    if pts.is_empty() {
        return Ok(None);
    }
    epoch_chart(
        &format!("{}: validation {metric_name}", stage.stage),
        metric_name,
        &[(metric_name, GREEN_, pts)],
        stage,
    )
    .map(Some)
}

/// Category axes are integers, `UNIT` per category, so bars and cells can sit inside a
/// category (plotters formats custom ticks only on integer axes).
const UNIT: i32 = 100;

/// Key points at the centres of `k` categories.
fn centres(k: usize) -> Vec<i32> {
    (0..k as i32).map(|i| i * UNIT + UNIT / 2).collect()
}

/// The category at coordinate `v` of a `k`-category axis drawn top to bottom.
fn top_down(v: i32, k: usize) -> usize {
    k.saturating_sub(1)
        .saturating_sub((v.max(0) / UNIT) as usize)
}

/// The coordinate of the top-to-bottom category `i`'s lower edge, plus `frac` of a category.
fn at(i: usize, k: usize, frac: f64) -> i32 {
    (k - 1 - i) as i32 * UNIT + (frac * UNIT as f64).round() as i32
}

/// Confusion-matrix heatmap: rows are true classes, columns predictions; cells are shaded by
/// the row's share (recall per cell) and show the count.
pub fn confusion_heatmap(labels: &[String], confusion: &[Vec<usize>]) -> Result<Chart> {
    let k = labels.len().max(1);
    let cell: u32 = if k <= 8 {
        56
    } else if k <= 20 {
        32
    } else {
        16
    };
    let names: Vec<String> = labels.iter().map(|l| short(l, 14)).collect();
    let longest = names.iter().map(|n| n.chars().count()).max().unwrap_or(1) as u32;
    let left = 24 + 7 * longest;
    let rotate = k > 6 || longest > 8;
    let bottom = if rotate { 30 + 7 * longest } else { 44 };
    let w = left + cell * k as u32 + 30;
    let h = bottom + cell * k as u32 + 50;
    let marks = confusion.iter().take(k).map(|r| r.len().min(k)).sum();
    let svg = svg(w.max(320), h, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("confusion matrix (validation)", (FONT, 18))
            .margin(10)
            .x_label_area_size(bottom)
            .y_label_area_size(left)
            .build_cartesian_2d(
                (0..k as i32 * UNIT).with_key_points(centres(k)),
                (0..k as i32 * UNIT).with_key_points(centres(k)),
            )
            .map_err(draw_err)?;
        let x_fmt = |v: &i32| {
            names
                .get((*v).max(0) as usize / UNIT as usize)
                .cloned()
                .unwrap_or_default()
        };
        let y_fmt = |v: &i32| names.get(top_down(*v, k)).cloned().unwrap_or_default();
        let x_style = if rotate {
            (FONT, 12).into_font().transform(FontTransform::Rotate90)
        } else {
            (FONT, 12).into_font()
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .disable_y_mesh()
            .x_desc("predicted")
            .y_desc("true")
            .x_label_style(x_style)
            .y_label_style((FONT, 12))
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .draw()
            .map_err(draw_err)?;
        let mut cells = Vec::new();
        let mut texts = Vec::new();
        for (t, row) in confusion.iter().enumerate().take(k) {
            let total: usize = row.iter().sum();
            let (y0, y1) = (at(t, k, 0.0), at(t, k, 1.0));
            for (p, &count) in row.iter().enumerate().take(k) {
                let share = if total > 0 {
                    count as f64 / total as f64
                } else {
                    0.0
                };
                // White through the series blue, by the row's share.
                let mix = |c: u8| (255.0 - share * (255.0 - c as f64)).round() as u8;
                let fill = RGBColor(mix(BLUE_.0), mix(BLUE_.1), mix(BLUE_.2));
                let x = p as i32 * UNIT;
                cells.push(Rectangle::new([(x, y0), (x + UNIT, y1)], fill.filled()));
                if cell >= 24 {
                    let color = if share > 0.55 { WHITE } else { BLACK };
                    texts.push(Text::new(
                        count.to_string(),
                        (x + UNIT / 2, y0 + UNIT / 2),
                        (FONT, 13).into_font().color(&color).pos(
                            plotters::style::text_anchor::Pos::new(
                                plotters::style::text_anchor::HPos::Center,
                                plotters::style::text_anchor::VPos::Center,
                            ),
                        ),
                    ));
                }
            }
        }
        chart.draw_series(cells).map_err(draw_err)?;
        chart.draw_series(texts).map_err(draw_err)?;
        Ok(())
    })?;
    Ok(Chart {
        svg,
        mark: "rect",
        marks,
    })
}

/// Horizontal grouped bars of precision, recall and F1 per class (or label).
pub fn class_bars(per_class: &[ClassMetrics]) -> Result<Chart> {
    let k = per_class.len().max(1);
    let names: Vec<String> = per_class.iter().map(|c| short(&c.label, 18)).collect();
    let longest = names.iter().map(|n| n.chars().count()).max().unwrap_or(1) as u32;
    let h = 110 + 30 * k as u32;
    // Bars of zero length are not drawn as anything visible.
    let marks = per_class
        .iter()
        .map(|c| {
            [c.precision, c.recall, c.f1]
                .iter()
                .filter(|&&v| v > 0.0)
                .count()
        })
        .sum();
    let svg = svg(WIDTH, h, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "precision, recall and F1 per class (validation)",
                (FONT, 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(20 + 7 * longest)
            // Room right of 1.0 for the legend, so it never covers a bar.
            .build_cartesian_2d(0.0..1.32, (0..k as i32 * UNIT).with_key_points(centres(k)))
            .map_err(draw_err)?;
        let y_fmt = |v: &i32| names.get(top_down(*v, k)).cloned().unwrap_or_default();
        let x_fmt = |v: &f64| {
            if *v <= 1.0 + 1e-9 {
                format!("{v:.1}")
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .y_label_style((FONT, 12))
            .x_desc("score")
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(draw_err)?;
        let parts: [BarPart; 3] = [
            ("precision", BLUE_, |c| c.precision),
            ("recall", ORANGE, |c| c.recall),
            ("F1", GREEN_, |c| c.f1),
        ];
        for (slot, (name, color, value)) in parts.into_iter().enumerate() {
            let bars = per_class.iter().enumerate().map(move |(i, c)| {
                let y = 0.1 + 0.27 * (2 - slot) as f64; // precision on top, as in the legend
                Rectangle::new(
                    [(0.0, at(i, k, y)), (value(c).max(0.0), at(i, k, y + 0.25))],
                    color.filled(),
                )
            });
            chart
                .draw_series(bars)
                .map_err(draw_err)?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .border_style(GREY)
            .background_style(WHITE.mix(0.85))
            .label_font((FONT, 13))
            .draw()
            .map_err(draw_err)
    })?;
    Ok(Chart {
        svg,
        mark: "rect",
        marks,
    })
}

/// Reliability diagram: each bin's observed rate as a bar over its confidence range, the bins'
/// (mean confidence, rate) points, and the diagonal of perfect calibration.
pub fn reliability_diagram(bins: &[ReliabilityBin], x_desc: &str, y_desc: &str) -> Result<Chart> {
    let ((x0, x1), (y0, y1)) = reliability_ranges(bins);
    let svg = svg(WIDTH, HEIGHT + 40, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("reliability (validation)", (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series(bins.iter().map(|b| {
                Rectangle::new(
                    [(b.lo + 0.005, 0.0), (b.hi - 0.005, b.accuracy)],
                    BLUE_.mix(0.35).filled(),
                )
            }))
            .map_err(draw_err)?
            .label("observed, per bin")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 14, y + 5)], BLUE_.mix(0.35).filled())
            });
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, 0.0), (1.0, 1.0)],
                6,
                4,
                GREY.stroke_width(1),
            ))
            .map_err(draw_err)?
            .label("perfect calibration")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREY));
        // Each bin's size above its bar: a rate over few predictions is noisy.
        chart
            .draw_series(bins.iter().map(|b| {
                Text::new(
                    format!("n={}", b.count),
                    ((b.lo + b.hi) / 2.0, (b.accuracy + 0.02).min(0.97)),
                    (FONT, 11).into_font().color(&GREY).pos(
                        plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Center,
                            plotters::style::text_anchor::VPos::Bottom,
                        ),
                    ),
                )
            }))
            .map_err(draw_err)?;
        let pts: Vec<(f64, f64)> = bins
            .iter()
            .map(|b| (b.mean_confidence, b.accuracy))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), ORANGE.stroke_width(2)))
            .map_err(draw_err)?
            .label("mean confidence vs observed")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], ORANGE));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, ORANGE.filled())))
            .map_err(draw_err)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(GREY)
            .background_style(WHITE.mix(0.85))
            .label_font((FONT, 13))
            .draw()
            .map_err(draw_err)
    })?;
    Ok(Chart {
        svg,
        mark: "circle",
        marks: bins.len(),
    })
}

/// The ranges of a reliability diagram: [0, 1] on both axes, grown to hold every bin edge,
/// mean confidence and observed rate.
pub(crate) fn reliability_ranges(bins: &[ReliabilityBin]) -> ((f64, f64), (f64, f64)) {
    (
        cover(
            (0.0, 1.0),
            bins.iter().flat_map(|b| [b.lo, b.hi, b.mean_confidence]),
        ),
        cover((0.0, 1.0), bins.iter().map(|b| b.accuracy)),
    )
}

/// The ranges of the threshold chart: thresholds over [0, 1] and F1 over [0, 1.05], grown to
/// hold every sweep point and chosen threshold.
pub(crate) fn threshold_ranges(curves: &[ThresholdCurve]) -> ((f64, f64), (f64, f64)) {
    (
        cover(
            (0.0, 1.0),
            curves
                .iter()
                .flat_map(|c| c.points.iter().map(|p| p.0).chain([c.chosen])),
        ),
        cover(
            (0.0, 1.05),
            curves.iter().flat_map(|c| c.points.iter().map(|p| p.1)),
        ),
    )
}

/// The (shared) range of both axes of the predicted-vs-true scatter: every true and predicted
/// value, padded.
pub(crate) fn scatter_range(truth: &[f32], pred: &[f32]) -> (f64, f64) {
    span(truth.iter().chain(pred).map(|&v| v as f64))
}

/// F1 against the decision threshold, one line per label, each with its chosen threshold dashed
/// and its operating point (the F1 there) marked.
pub fn threshold_f1(curves: &[ThresholdCurve]) -> Result<Chart> {
    let ((x0, x1), (y0, y1)) = threshold_ranges(curves);
    let svg = svg(WIDTH, HEIGHT, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("F1 vs decision threshold (validation)", (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("threshold")
            .y_desc("F1")
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(draw_err)?;
        for (i, c) in curves.iter().enumerate() {
            let color = SERIES[i % SERIES.len()];
            chart
                .draw_series(LineSeries::new(
                    c.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(draw_err)?
                .label(format!(
                    "{} (threshold {:.2})",
                    short(&c.label, 24),
                    c.chosen
                ))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(c.chosen, y0.max(0.0)), (c.chosen, y1)],
                    5,
                    4,
                    color.mix(0.8).stroke_width(1),
                ))
                .map_err(draw_err)?;
            chart
                .draw_series(std::iter::once(Circle::new(
                    (c.chosen, f1_at(&c.points, c.chosen)),
                    5,
                    color.filled(),
                )))
                .map_err(draw_err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .border_style(GREY)
            .background_style(WHITE.mix(0.85))
            .label_font((FONT, 13))
            .draw()
            .map_err(draw_err)
    })?;
    Ok(Chart {
        svg,
        mark: "circle",
        marks: curves.len(),
    })
}

/// The F1 of the sweep point nearest to threshold `t`.
fn f1_at(points: &[(f64, f64)], t: f64) -> f64 {
    points
        .iter()
        .min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs()))
        .map_or(0.0, |p| p.1)
}

/// Predicted against true values with the diagonal; past [`MAX_SCATTER_POINTS`] rows, every
/// k-th row is drawn.
pub fn scatter(truth: &[f32], pred: &[f32]) -> Result<Chart> {
    let n = truth.len().min(pred.len());
    let stride = n.div_ceil(MAX_SCATTER_POINTS).max(1);
    let (lo, hi) = scatter_range(&truth[..n], &pred[..n]);
    let svg = svg(WIDTH, WIDTH, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("predicted vs true (validation)", (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..hi, lo..hi)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("true")
            .y_desc("predicted")
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series((0..n).step_by(stride).map(|i| {
                Circle::new(
                    (truth[i] as f64, pred[i] as f64),
                    2,
                    BLUE_.mix(0.35).filled(),
                )
            }))
            .map_err(draw_err)?
            .label(if stride > 1 {
                format!("{} of {n} rows", n.div_ceil(stride))
            } else {
                format!("{n} rows")
            })
            .legend(|(x, y)| Circle::new((x + 7, y), 3, BLUE_.filled()));
        chart
            .draw_series(DashedLineSeries::new(
                vec![(lo, lo), (hi, hi)],
                6,
                4,
                GREY.stroke_width(1),
            ))
            .map_err(draw_err)?
            .label("predicted = true")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREY));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(GREY)
            .background_style(WHITE.mix(0.85))
            .label_font((FONT, 13))
            .draw()
            .map_err(draw_err)
    })?;
    Ok(Chart {
        svg,
        mark: "circle",
        marks: n.div_ceil(stride),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage() -> StageReport {
        let history = (0..4)
            .map(|e| EpochRecord {
                stage: "stage2".into(),
                epoch: e,
                epochs: 10,
                train_loss: 1.0 / (e + 1) as f32,
                valid_loss: 1.2 / (e + 1) as f32,
                metric: Some(0.5 + 0.1 * e as f32),
                monitored: None,
                task_losses: Vec::new(),
                lr: 1e-3,
                elapsed: e as f64,
            })
            .collect();
        StageReport {
            stage: "stage2".into(),
            epochs_run: 4,
            best_epoch: 3,
            best_valid_loss: 0.3,
            monitor: "valid_loss (min)".into(),
            best_monitored: 0.3,
            learned_weights: None,
            seconds: 4.0,
            seconds_to_best: 4.0,
            history,
        }
    }

    /// A complete SVG document with `marks` data marks, and at least that many elements of
    /// the mark's type.
    fn drawn(c: &Chart, mark: &str, marks: usize) {
        assert!(
            c.svg.starts_with("<svg"),
            "{}",
            &c.svg[..c.svg.len().min(80)]
        );
        assert!(c.svg.trim_end().ends_with("</svg>"));
        assert_eq!((c.mark, c.marks), (mark, marks));
        let found = c.svg.matches(&format!("<{mark}")).count();
        assert!(found >= marks, "{found} <{mark}> for {marks} marks");
    }

    #[test]
    fn epoch_charts_draw_a_point_per_epoch_and_series() {
        let s = stage();
        let loss = loss_curves(&s).unwrap();
        drawn(&loss, "circle", 8);
        assert!(loss.svg.contains("stage2: loss") && loss.svg.contains("<polyline"));
        let m = metric_curve(&s, "macro-F1").unwrap().unwrap();
        drawn(&m, "circle", 4);
        let mut none = s.clone();
        none.history.iter_mut().for_each(|r| r.metric = None);
        assert!(metric_curve(&none, "macro-F1").unwrap().is_none());
        // A NaN loss is left out, not drawn at a bogus place.
        none.history[0].valid_loss = f32::NAN;
        drawn(&loss_curves(&none).unwrap(), "circle", 7);
    }

    #[test]
    fn heatmap_has_a_cell_per_pair_and_escapes_labels() {
        let labels = vec!["<b>".to_string(), "a&b".to_string(), "c".to_string()];
        let c = confusion_heatmap(&labels, &[vec![3, 1, 0], vec![0, 2, 0], vec![1, 0, 4]]).unwrap();
        drawn(&c, "rect", 9);
        assert!(c.svg.contains("&lt;b&gt;") && c.svg.contains("a&amp;b"));
        assert!(!c.svg.contains("<b>"));
        // Counts are written in the cells.
        for n in [3, 2, 4] {
            assert!(c.svg.contains(&format!(">\n{n}\n</text>")), "{n}");
        }
    }

    #[test]
    fn bars_reliability_threshold_and_scatter_are_drawn() {
        let per_class: Vec<ClassMetrics> = [("x", 0.5), ("y", 0.0)]
            .iter()
            .map(|&(l, p)| ClassMetrics {
                label: l.to_string(),
                precision: p,
                recall: p,
                f1: p,
                support: 3,
            })
            .collect();
        // Class y has all-zero bars: nothing to draw for it.
        drawn(&class_bars(&per_class).unwrap(), "rect", 3);
        let bins = super::super::stats::reliability(&[0.1, 0.5, 0.9], &[false, true, true], 10);
        drawn(
            &reliability_diagram(&bins, "confidence", "accuracy").unwrap(),
            "circle",
            3,
        );
        let curve = ThresholdCurve {
            label: "spam".into(),
            points: vec![(0.0, 0.2), (0.5, 0.9), (1.0, 0.0)],
            chosen: 0.4,
        };
        assert_eq!(f1_at(&curve.points, 0.4), 0.9);
        let t = threshold_f1(&[curve]).unwrap();
        drawn(&t, "circle", 1);
        assert!(t.svg.contains("spam (threshold 0.40)"));
        let truth: Vec<f32> = (0..10).map(|i| i as f32).collect();
        let pred: Vec<f32> = truth.iter().map(|v| v * 0.9).collect();
        drawn(&scatter(&truth, &pred).unwrap(), "circle", 10);
    }

    #[test]
    fn large_scatter_is_thinned() {
        let truth: Vec<f32> = (0..(2 * MAX_SCATTER_POINTS + 10))
            .map(|i| i as f32)
            .collect();
        let c = scatter(&truth, &truth).unwrap();
        assert!(c.marks <= MAX_SCATTER_POINTS && c.marks >= MAX_SCATTER_POINTS / 2);
        // The points plus the legend's sample.
        assert_eq!(c.svg.matches("<circle").count(), c.marks + 1);
    }

    #[test]
    fn spans_pad_and_survive_constants() {
        assert_eq!(span([2.0, 2.0]), (1.5, 2.5));
        assert_eq!(span([f64::NAN]), (0.0, 1.0));
        let (a, b) = span([0.0, 10.0]);
        assert!(a < 0.0 && b > 10.0);
        assert_eq!(short("abcdef", 4), "abc…");
    }
}
