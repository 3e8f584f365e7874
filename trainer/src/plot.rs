//! Training plots as PNG: the loss/accuracy curve, the confusion matrix, a
//! series with a score along it, and labelled lines (forecasts, errors per step).
//!
//! ## Contract
//! - Plots are optional extras: every failure is an error for the caller to
//!   print as a warning, never a panic.
//! - Text needs a TrueType font, which plotters (built with `ab_glyph`)
//!   does not bundle: DejaVu Sans is looked up in the usual system folders
//!   and registered once. Without it the error says which package to install.
//! - Files are replaced atomically: the image is rendered to a hidden
//!   temporary file in the same folder and renamed over the target.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Where DejaVu Sans lives on common systems (Debian/Ubuntu, Fedora, Arch, macOS with Homebrew).
const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/opt/homebrew/share/fonts/DejaVuSans.ttf",
    "/usr/local/share/fonts/DejaVuSans.ttf",
];

const FONT_FAMILY: &str = "sans-serif";
const WHITE_TEXT_ABOVE: f64 = 0.5;

/// Register DejaVu Sans with plotters, once per process.
fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(register_font)
        .clone()
        .map_err(|e| anyhow!(e))
}

fn register_font() -> std::result::Result<(), String> {
    let (path, bytes) = read_first_font(FONT_CANDIDATES)?;
    // plotters keeps fonts for the whole process, so the bytes are leaked on
    // purpose; this happens at most once.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, bytes)
        .map_err(|_| format!("{path}: not a usable TrueType font"))
}

/// The first readable file among `candidates`, or an error naming the package to install.
fn read_first_font<'a>(candidates: &[&'a str]) -> std::result::Result<(&'a str, Vec<u8>), String> {
    candidates
        .iter()
        .find_map(|&p| std::fs::read(p).ok().map(|bytes| (p, bytes)))
        .ok_or_else(|| {
            format!(
                "no font for plot text: DejaVu Sans not found in {}; install it \
             (Debian/Ubuntu: fonts-dejavu-core, Fedora: dejavu-sans-fonts, Arch: ttf-dejavu)",
                candidates.join(", ")
            )
        })
}

/// Render with `draw` into a temporary PNG beside `path`, then rename it over
/// `path`; the temporary file is removed on any error.
fn render_atomic(path: &Path, draw: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    ensure_font()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // The backend picks the image format from the extension, so keep `.png`.
    let temp: PathBuf = crate::io::temp_path_for(path)?.with_extension("tmp.png");
    let result = draw(&temp)
        .and_then(|()| {
            std::fs::File::open(&temp)?.sync_all()?;
            Ok(())
        })
        .and_then(|()| std::fs::rename(&temp, path).map_err(Into::into));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.with_context(|| format!("cannot write plot {}", path.display()))
}

/// What a training curve shows, one value per epoch (1-based on the x axis).
#[derive(Debug, Clone, Copy)]
pub struct Curves<'a> {
    /// Mean training loss.
    pub train_loss: &'a [f32],
    /// Validation loss (empty: no validation split).
    pub validation_loss: &'a [f32],
    /// A test metric in `[0, 1]`, drawn x100 (empty: not watched).
    pub metric: &'a [f32],
    /// The metric's axis label, e.g. `"test accuracy (%)"`.
    pub metric_label: &'a str,
    /// The epoch whose weights were kept (restored), marked in both panels.
    pub restored_epoch: Option<usize>,
}

/// Plot training and validation loss per epoch (top panel, log scale;
/// values <= 0 are skipped) and the test metric per epoch (bottom panel),
/// with a dashed line at the restored epoch. Non-finite values are
/// skipped; any series may be empty.
pub fn loss_curve(path: &Path, title: &str, curves: &Curves<'_>) -> Result<()> {
    const SIZE: (u32, u32) = (900, 700);
    render_atomic(path, |temp| {
        let root = BitMapBackend::new(temp, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, (FONT_FAMILY, 26))?;
        let (top, bottom) = root.split_vertically(SIZE.1 / 2 - 20);
        let epochs = curves
            .train_loss
            .len()
            .max(curves.validation_loss.len())
            .max(curves.metric.len())
            .max(1) as f64;
        let positive = |values: &[f32]| -> Vec<(f64, f64)> {
            finite_points(values, 1.0)
                .into_iter()
                .filter(|p| p.1 > 0.0)
                .collect()
        };
        let train = positive(curves.train_loss);
        let validation = positive(curves.validation_loss);

        // Log scale: cross-entropy falls by orders of magnitude, and a linear
        // axis would flatten everything after the first few epochs.
        let all = train.iter().chain(&validation).map(|p| p.1);
        let max_loss = all.clone().fold(f64::MIN_POSITIVE, f64::max);
        let min_loss = all.fold(max_loss, f64::min);
        let (loss_low, loss_high) = if train.is_empty() && validation.is_empty() {
            (0.01, 10.0)
        } else {
            (min_loss / 1.5, (max_loss * 1.5).max(min_loss * 10.0))
        };
        let mut chart = ChartBuilder::on(&top)
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(70)
            .build_cartesian_2d(1.0..epochs.max(2.0), (loss_low..loss_high).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("loss (log)")
            .label_style((FONT_FAMILY, 17))
            .x_label_formatter(&|epoch| format!("{epoch:.0}"))
            .y_label_formatter(&|loss| format!("{loss:.1e}"))
            .draw()?;
        chart
            .draw_series(LineSeries::new(train, RED.stroke_width(2)))?
            .label("training loss")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(2)));
        if !validation.is_empty() {
            let orange = RGBColor(230, 140, 0);
            chart
                .draw_series(LineSeries::new(validation, orange.stroke_width(2)))?
                .label("validation loss")
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], orange.stroke_width(2))
                });
        }
        if let Some(epoch) = curves.restored_epoch {
            let x = epoch as f64;
            chart
                .draw_series(DashedLineSeries::new(
                    [(x, loss_low), (x, loss_high)],
                    6,
                    4,
                    BLACK.stroke_width(1),
                ))?
                .label(format!("restored epoch {epoch}"))
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((FONT_FAMILY, 15))
            .draw()?;

        let metric = finite_points(curves.metric, 100.0);
        let lowest = metric.iter().map(|p| p.1).fold(100.0, f64::min);
        // Zoom in on the interesting band, in whole steps of 5 %.
        let floor = ((lowest - 1.0) / 5.0).floor().clamp(0.0, 19.0) * 5.0;
        let mut chart = ChartBuilder::on(&bottom)
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(70)
            .build_cartesian_2d(1.0..epochs.max(2.0), floor..100.0)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(curves.metric_label)
            .label_style((FONT_FAMILY, 17))
            .x_label_formatter(&|epoch| format!("{epoch:.0}"))
            .draw()?;
        chart.draw_series(LineSeries::new(metric, BLUE.stroke_width(2)))?;
        if let Some(epoch) = curves.restored_epoch {
            let x = epoch as f64;
            chart.draw_series(DashedLineSeries::new(
                [(x, floor), (x, 100.0)],
                6,
                4,
                BLACK.stroke_width(1),
            ))?;
        }

        root.present()?;
        Ok(())
    })
}

/// A series and a score along it (a forecaster's error), with the labelled
/// anomalous points shaded: the picture of "where did the model get surprised".
/// `points[i]` is the series index of `values[i]` and `scores[i]`.
pub fn series_scores(
    path: &Path,
    title: &str,
    points: &[usize],
    values: &[f32],
    scores: &[f32],
    anomalous: &[bool],
    score_label: &str,
) -> Result<()> {
    const SIZE: (u32, u32) = (1200, 700);
    render_atomic(path, |temp| {
        let root = BitMapBackend::new(temp, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, (FONT_FAMILY, 26))?;
        let (top, bottom) = root.split_vertically(SIZE.1 / 2 - 20);
        let first = points.first().copied().unwrap_or(0) as f64;
        let last = (points.last().copied().unwrap_or(1) as f64).max(first + 1.0);
        let range = |v: &[f32]| {
            let finite = v.iter().filter(|x| x.is_finite()).map(|&x| f64::from(x));
            let (lo, hi) = finite.fold((f64::MAX, f64::MIN), |(l, h), x| (l.min(x), h.max(x)));
            if lo > hi {
                (0.0, 1.0)
            } else {
                (lo, hi.max(lo + 1e-6))
            }
        };
        for (area, data, label, color) in [
            (&top, values, "value", BLUE),
            (&bottom, scores, score_label, RED),
        ] {
            let (lo, hi) = range(data);
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(first..last, lo..hi)?;
            chart
                .configure_mesh()
                .x_desc("point")
                .y_desc(label)
                .label_style((FONT_FAMILY, 17))
                .x_label_formatter(&|x| format!("{x:.0}"))
                .draw()?;
            let shade = RGBColor(255, 200, 120).mix(0.6).filled();
            chart.draw_series(points.iter().zip(anomalous).filter(|(_, &a)| a).map(
                |(&p, _)| Rectangle::new([(p as f64 - 0.5, lo), (p as f64 + 0.5, hi)], shade),
            ))?;
            chart.draw_series(LineSeries::new(
                points
                    .iter()
                    .zip(data)
                    .filter(|(_, v)| v.is_finite())
                    .map(|(&p, &v)| (p as f64, f64::from(v))),
                color.stroke_width(1),
            ))?;
        }
        root.present()?;
        Ok(())
    })
}

/// One labelled line of [`lines`]: `(x, y)` points (non-finite ones skipped).
pub struct Line<'a> {
    /// Shown in the legend.
    pub label: &'a str,
    /// Colour.
    pub color: RGBColor,
    /// Points in order.
    pub points: Vec<(f64, f64)>,
    /// Also mark each point with a dot (short lines, such as a forecast).
    pub dots: bool,
}

/// Labelled lines on one chart with a legend (a forecast against the truth,
/// errors per horizon step). Axes span every finite point.
pub fn lines(path: &Path, title: &str, axes: (&str, &str), series: &[Line<'_>]) -> Result<()> {
    const SIZE: (u32, u32) = (1100, 650);
    let finite = || {
        series
            .iter()
            .flat_map(|l| l.points.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    let span = |values: Vec<f64>| {
        let (lo, hi) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        if lo > hi {
            (0.0, 1.0)
        } else {
            let pad = 0.05 * (hi - lo).max(1e-6);
            (lo - pad, hi + pad)
        }
    };
    let (x0, x1) = span(finite().map(|p| p.0).collect());
    let (y0, y1) = span(finite().map(|p| p.1).collect());
    render_atomic(path, |temp| {
        let root = BitMapBackend::new(temp, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, (FONT_FAMILY, 24))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(axes.0)
            .y_desc(axes.1)
            .label_style((FONT_FAMILY, 17))
            .draw()?;
        for line in series {
            let points: Vec<(f64, f64)> = line
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            let color = line.color;
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(line.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
            if line.dots {
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT_FAMILY, 17))
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// `(epoch, value * factor)` for the finite values, epochs counted from 1.
fn finite_points(values: &[f32], factor: f64) -> Vec<(f64, f64)> {
    values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(i, &v)| ((i + 1) as f64, f64::from(v) * factor))
        .collect()
}

/// Plot a confusion matrix: `matrix[true][predicted]` counts, rows = true
/// class, columns = predicted class. Cells are shaded by their share of the
/// row (so small classes show up as clearly as big ones) and show the count.
pub fn confusion_matrix(
    path: &Path,
    title: &str,
    class_names: &[String],
    matrix: &[Vec<usize>],
) -> Result<()> {
    let n = class_names.len();
    if n == 0 {
        bail!("confusion matrix: no classes");
    }
    if matrix.len() != n || matrix.iter().any(|row| row.len() != n) {
        bail!("confusion matrix: expected {n}x{n} counts for {n} classes");
    }
    let names: Vec<String> = class_names.iter().map(|name| shorten(name, 14)).collect();
    let name_width = names.iter().map(|s| s.chars().count()).max().unwrap_or(1) as u32;
    // Cells wide enough for the column labels (~9 px per character at the
    // label size), so predicted-class names never overlap.
    let cell = (600 / n as u32).clamp(24, 64).max(name_width * 9 + 10);
    let (x_label_area, y_label_area) = (60, 40 + name_width * 9);
    let grid = cell * n as u32;
    let size = (grid + y_label_area + 50, grid + x_label_area + 80);

    render_atomic(path, |temp| {
        let root = BitMapBackend::new(temp, size).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, (FONT_FAMILY, 22))?;
        // Segmented axes put each class label at the centre of its cell. An
        // integer range includes its end, so `0..n - 1` gives n segments.
        let class_axis = 0..n - 1;
        let mut chart = ChartBuilder::on(&root)
            .margin(16)
            .x_label_area_size(x_label_area)
            .y_label_area_size(y_label_area)
            .build_cartesian_2d(
                class_axis.clone().into_segmented(),
                class_axis.into_segmented(),
            )?;
        // Row `t` is drawn at y = n - 1 - t so class 0 is the top row, as in a table.
        let flip = |t: usize| n - 1 - t;
        let x_name = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        let y_name = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) if *i < n => names[flip(*i)].clone(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(n + 1)
            .y_labels(n + 1)
            .x_desc("predicted class")
            .y_desc("true class")
            .x_label_formatter(&x_name)
            .y_label_formatter(&y_name)
            .label_style((FONT_FAMILY, 17))
            .axis_desc_style((FONT_FAMILY, 18))
            .draw()?;

        let font_size = (f64::from(cell) * 0.32).clamp(10.0, 20.0);
        let outline = RGBColor(200, 200, 200);
        for (t, row) in matrix.iter().enumerate() {
            let row_total: usize = row.iter().sum();
            let y = flip(t);
            for (p, &count) in row.iter().enumerate() {
                let share = if row_total > 0 {
                    count as f64 / row_total as f64
                } else {
                    0.0
                };
                let corners = [
                    (SegmentValue::Exact(p), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(p + 1), SegmentValue::Exact(y + 1)),
                ];
                chart.draw_series([
                    Rectangle::new(corners.clone(), shade(share).filled()),
                    // Thin outline so empty (white) cells still read as cells.
                    Rectangle::new(corners, outline.stroke_width(1)),
                ])?;
                let color = if share > WHITE_TEXT_ABOVE {
                    WHITE
                } else {
                    BLACK
                };
                let style = TextStyle::from((FONT_FAMILY, font_size).into_font())
                    .color(&color)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                chart.draw_series(std::iter::once(Text::new(
                    count.to_string(),
                    (SegmentValue::CenterOf(p), SegmentValue::CenterOf(y)),
                    style,
                )))?;
            }
        }
        root.present()?;
        Ok(())
    })
}

/// White (share 0) to dark blue (share 1).
fn shade(share: f64) -> RGBColor {
    let mix =
        |white: f64, dark: f64| (white + (dark - white) * share.clamp(0.0, 1.0)).round() as u8;
    RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

/// Cut long class names so the label area stays reasonable.
fn shorten(name: &str, max_chars: usize) -> String {
    if name.chars().count() <= max_chars {
        name.to_string()
    } else {
        let mut short: String = name.chars().take(max_chars - 1).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

    fn assert_png(path: &Path) {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            bytes.len() > 1000,
            "{} is suspiciously small",
            path.display()
        );
        assert!(
            bytes.starts_with(PNG_MAGIC),
            "{} is not a PNG",
            path.display()
        );
    }

    #[test]
    fn both_plots_render_to_png_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let loss: Vec<f32> = (0..60)
            .map(|e| 2.3 * (-(e as f32) / 12.0).exp() + 0.05)
            .collect();
        let accuracy: Vec<f32> = (0..60)
            .map(|e| 0.97 - 0.6 * (-(e as f32) / 8.0).exp())
            .collect();
        let loss_path = dir.path().join("plots/loss.png");
        let validation: Vec<f32> = loss
            .iter()
            .enumerate()
            .map(|(e, l)| l + 0.002 * e as f32)
            .collect();
        let curves = Curves {
            train_loss: &loss,
            validation_loss: &validation,
            metric: &accuracy,
            metric_label: "test accuracy (%)",
            restored_epoch: Some(31),
        };
        loss_curve(&loss_path, "digits-mlp", &curves).unwrap();
        assert_png(&loss_path);

        let names: Vec<String> = (0..10).map(|d| d.to_string()).collect();
        let matrix: Vec<Vec<usize>> = (0..10)
            .map(|t| {
                (0..10)
                    .map(|p| {
                        if t == p {
                            34 + t
                        } else {
                            usize::from((t + p) % 7 == 0)
                        }
                    })
                    .collect()
            })
            .collect();
        let confusion_path = dir.path().join("plots/confusion.png");
        confusion_matrix(
            &confusion_path,
            "digits-mlp int8, test split",
            &names,
            &matrix,
        )
        .unwrap();
        assert_png(&confusion_path);

        let mut entries: Vec<String> = std::fs::read_dir(dir.path().join("plots"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        entries.sort();
        assert_eq!(
            entries,
            ["confusion.png", "loss.png"],
            "no temporary files left behind"
        );

        if let Ok(keep) = std::env::var("TRAINER_KEEP_PLOTS") {
            std::fs::copy(&loss_path, Path::new(&keep).join("loss.png")).unwrap();
            std::fs::copy(&confusion_path, Path::new(&keep).join("confusion.png")).unwrap();
        }
    }

    #[test]
    fn missing_font_names_the_package_to_install() {
        let err = read_first_font(&["/nonexistent/DejaVuSans.ttf"]).unwrap_err();
        assert!(
            err.contains("/nonexistent/DejaVuSans.ttf") && err.contains("fonts-dejavu-core"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        let empty = Curves {
            train_loss: &[],
            validation_loss: &[],
            metric: &[],
            metric_label: "test accuracy (%)",
            restored_epoch: None,
        };
        loss_curve(&dir.path().join("empty.png"), "empty", &empty).unwrap();
        let nan = Curves {
            train_loss: &[f32::NAN, 1.0],
            validation_loss: &[f32::NAN],
            metric: &[f32::INFINITY],
            restored_epoch: Some(7),
            ..empty
        };
        loss_curve(&dir.path().join("nan.png"), "nan", &nan).unwrap();
        let names = vec![
            "setosa".to_string(),
            "a-very-long-class-name-indeed".to_string(),
        ];
        confusion_matrix(
            &dir.path().join("zeros.png"),
            "zeros",
            &names,
            &[vec![0, 0], vec![0, 0]],
        )
        .unwrap();
        confusion_matrix(&dir.path().join("one.png"), "one", &names[..1], &[vec![5]]).unwrap();
        if let Ok(keep) = std::env::var("TRAINER_KEEP_PLOTS") {
            std::fs::copy(
                dir.path().join("zeros.png"),
                Path::new(&keep).join("zeros.png"),
            )
            .unwrap();
        }
        let err = confusion_matrix(&dir.path().join("bad.png"), "bad", &names, &[vec![1, 2]])
            .unwrap_err();
        assert!(err.to_string().contains("expected 2x2"), "{err}");
        assert!(!dir.path().join("bad.png").exists());
    }
}
