//! Latency percentile curves as SVG: one line per run, percentiles on a log scale of
//! 1/(1 - p) so the tail gets the room, the way HdrHistogram plots them.

use crate::latency::Summary;
use plotters::prelude::*;
use std::path::Path;

/// Where a percentile lands on the x axis: log10(1 / (1 - p)), so 90 % is 1, 99 % is 2.
fn x_of(percentile: f64) -> f64 {
    let tail = (1.0 - percentile / 100.0).max(1e-6);
    -tail.log10()
}

fn label_of(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    if p < 0.5 { "0%".into() } else { format!("{}%", (p * 1000.0).round() / 1000.0) }
}

/// Draws `runs` (label, latency summary) into an SVG file at `out`.
pub fn plot(runs: &[(String, Summary)], title: &str, out: &Path) -> Result<(), String> {
    let points: Vec<Vec<(f64, f64)>> = runs
        .iter()
        .map(|(_, s)| s.curve.iter().map(|&(p, us)| (x_of(p), us as f64 / 1000.0)).collect())
        .collect();
    let x_max = points.iter().flatten().map(|p| p.0).fold(2.0f64, f64::max).ceil();
    let y_max = points.iter().flatten().map(|p| p.1).fold(0.001f64, f64::max) * 1.1;
    let root = SVGBackend::new(out, (960, 540)).into_drawing_area();
    let e = |e: &dyn std::fmt::Display| format!("plot {}: {e}", out.display());
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_labels(x_max as usize + 1)
        .x_label_formatter(&|x| label_of(*x))
        .draw()
        .map_err(|x| e(&x))?;
    for (i, ((label, _), pts)) in runs.iter().zip(points).enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_gives_the_tail_room() {
        assert_eq!(x_of(0.0), 0.0);
        assert!((x_of(90.0) - 1.0).abs() < 1e-9);
        assert!((x_of(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(x_of(100.0), 6.0);
        assert_eq!(label_of(2.0), "99%");
        assert_eq!(label_of(0.0), "0%");
    }
}
