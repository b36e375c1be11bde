//! `--plot FILE.svg`: removals a second and p99 against clients, one line per workload, one row
//! of two charts per durability, every axis in log scale.

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

use crate::cli::Workload;
use crate::report::{Point, Row, durabilities, durability_label};

/// The lines of the charts: legend, colour and workload (the batched pgbench's line is the one at
/// the batch size gRPC made the server form).
#[rustfmt::skip]
const SERIES: [(&str, RGBColor, Workload); 4] = [
    ("REST (gateway → server)", RGBColor(31, 119, 180), Workload::Rest),
    ("gRPC (server)", RGBColor(255, 127, 14), Workload::Grpc),
    ("pgbench, 1 removal per statement", RGBColor(44, 160, 44), Workload::Pgbench),
    ("pgbench, batches as gRPC formed", RGBColor(214, 39, 40), Workload::PgbenchBatched),
];

fn series_row(point: &Point, workload: Workload) -> Option<&Row> {
    match workload {
        Workload::PgbenchBatched => point.batched_for(Workload::Grpc),
        _ => point.row(workload),
    }
}

const CHART_SIZE: (u32, u32) = (640, 420);

/// What a chart draws of a row.
type Figure = fn(&Row) -> f64;

/// The two charts of each durability: caption, y axis and figure.
#[rustfmt::skip]
const CHARTS: [(&str, &str, Figure); 2] = [
    ("removals/s", "removals/s", |r| r.removals_per_second),
    ("p99 latency", "p99 ms", |r| r.latency_us.p99 as f64 / 1000.0),
];

/// Draws `points` into an SVG file at `path`.
pub(crate) fn draw(points: &[Point], path: &Path) -> anyhow::Result<()> {
    let durabilities = durabilities(points);
    let blocks = durabilities.len().max(1);
    let size = (2 * CHART_SIZE.0, CHART_SIZE.1 * blocks as u32);
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((blocks, 2));
    for (i, durable) in durabilities.iter().enumerate() {
        let block: Vec<&Point> = points.iter().filter(|p| p.durable == *durable).collect();
        let label = durability_label(*durable);
        for (j, (caption, y_desc, figure)) in CHARTS.into_iter().enumerate() {
            let caption = format!("{caption}, {label}");
            chart(&areas[2 * i + j], &block, &caption, y_desc, figure)?;
        }
    }
    root.present()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// One chart: `figure` of each series against clients, both axes in log scale (so equal
/// ratios look equal at every scale); x is log2 of clients, labelled with the client count.
fn chart(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    points: &[&Point],
    caption: &str,
    y_desc: &str,
    figure: Figure,
) -> anyhow::Result<()> {
    let x = |p: &Point| f64::from(p.clients).log2();
    let lines = SERIES.map(|(name, color, workload)| {
        let y = |p: &Point| Some(figure(series_row(p, workload)?)).filter(|y| *y > 0.0);
        let line: Vec<(f64, f64)> = points.iter().filter_map(|p| Some((x(p), y(p)?))).collect();
        (name, color, line)
    });
    let max_x = points.iter().map(|p| x(p)).fold(0.0, f64::max);
    let ys = lines.iter().flat_map(|(_, _, l)| l.iter().map(|(_, y)| *y));
    let (min_y, max_y) = ys.fold((f64::MAX, 0.0_f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (min_y, max_y) = if max_y > 0.0 {
        (min_y, max_y)
    } else {
        (1.0, 10.0)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.3..max_x + 0.3, (min_y / 1.3..max_y * 1.8).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("clients")
        .y_desc(y_desc)
        .x_labels(max_x as usize + 2)
        .y_labels(10)
        .x_label_formatter(&|x| {
            let count = x.exp2().round();
            let shown = points.iter().any(|p| f64::from(p.clients) == count);
            if shown {
                format!("{count}")
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| match *y {
            y if y >= 10.0 => format!("{y:.0}"),
            y => format!("{y:.1}"),
        })
        .draw()?;
    for (name, color, line) in &lines {
        let style = color.stroke_width(2);
        chart
            .draw_series(LineSeries::new(line.iter().copied(), style))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart.draw_series(line.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::point;

    #[test]
    fn draws_every_series_into_an_svg() {
        let mut durable = point(32);
        durable.durable = true;
        let points = [point(1), point(32), durable];
        let path =
            std::env::temp_dir().join(format!("groups-bench-plot-{}.svg", std::process::id()));
        draw(&points, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
        for (name, _, _) in &SERIES {
            assert!(svg.contains(name), "{name} in the legend");
        }
        assert!(svg.contains("removals/s, fsync off"));
        assert!(svg.contains("p99 latency, durable"));
    }
}
