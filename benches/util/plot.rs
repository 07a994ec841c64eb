//! The benches' one plot: a CDF of timer lateness per receiver, on a log scale (SVG).

use anyhow::Result;
use plotters::prelude::*;

/// Writes the lateness samples (ns) of each named series as CDFs to `path`.
pub fn lateness_cdf(path: &str, caption: &str, series: &[(String, Vec<u64>)]) -> Result<()> {
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((1f64..1_000_000f64).log_scale(), 0f64..1f64)?;
    chart
        .configure_mesh()
        .x_desc("lateness (µs, log scale)")
        .y_desc("fraction of ticks")
        .draw()?;
    let colors = [
        RED,
        BLUE,
        GREEN,
        MAGENTA,
        CYAN,
        BLACK,
        RGBColor(255, 140, 0),
        RGBColor(128, 0, 128),
        RGBColor(128, 128, 128),
        RGBColor(139, 69, 19),
    ];
    for (i, (name, samples)) in series.iter().enumerate() {
        let mut s = samples.clone();
        s.sort_unstable();
        let n = s.len().max(1) as f64;
        let pts: Vec<(f64, f64)> = s
            .iter()
            .enumerate()
            .map(|(k, &ns)| (((ns as f64) / 1000.0).max(1.0), (k + 1) as f64 / n))
            .collect();
        let c = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))?
            .label(format!("{name} ({} ticks)", s.len()))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    println!("wrote {path}");
    Ok(())
}
