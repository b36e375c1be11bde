//! `--plot FILE.svg`: removals a second and p99 against clients, one line per workload, one row
//! of two charts per durability, every axis in log scale.

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

use crate::cli::Workload;
use crate::report::{Point, Row};

/// A line of the charts: its legend and how to find its row at a point.
struct Series {
    name: &'static str,
    color: RGBColor,
    row: fn(&Point) -> Option<&Row>,
}

const SERIES: [Series; 4] = [
    Series {
        name: "REST (gateway → server)",
        color: RGBColor(31, 119, 180),
        row: |p| p.row(Workload::Rest),
    },
    Series {
        name: "gRPC (server)",
        color: RGBColor(255, 127, 14),
        row: |p| p.row(Workload::Grpc),
    },
    Series {
        name: "pgbench, 1 removal per statement",
        color: RGBColor(44, 160, 44),
        row: |p| p.row(Workload::Pgbench),
    },
    Series {
        name: "pgbench, batches as gRPC formed",
        color: RGBColor(214, 39, 40),
        row: |p| p.batched_for(Workload::Grpc),
    },
];

const CHART_SIZE: (u32, u32) = (640, 420);

/// Draws `points` into an SVG file at `path`.
pub(crate) fn draw(points: &[Point], path: &Path) -> anyhow::Result<()> {
    let mut durabilities: Vec<bool> = points.iter().map(|p| p.durable).collect();
    durabilities.dedup();
    let size = (
        2 * CHART_SIZE.0,
        CHART_SIZE.1 * durabilities.len().max(1) as u32,
    );
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((durabilities.len().max(1), 2));
    for (i, durable) in durabilities.iter().enumerate() {
        let block: Vec<&Point> = points.iter().filter(|p| p.durable == *durable).collect();
        let label = crate::report::durability_label(*durable);
        chart(
            &areas[2 * i],
            &block,
            &format!("removals/s, {label}"),
            "removals/s",
            |r| r.removals_per_second,
        )?;
        chart(
            &areas[2 * i + 1],
            &block,
            &format!("p99 latency, {label}"),
            "p99 ms",
            |r| r.latency_us.p99 as f64 / 1000.0,
        )?;
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
    figure: fn(&Row) -> f64,
) -> anyhow::Result<()> {
    let lines: Vec<(&Series, Vec<(f64, f64)>)> = SERIES
        .iter()
        .map(|s| {
            let line = points
                .iter()
                .filter_map(|p| Some((f64::from(p.clients).log2(), figure((s.row)(p)?))))
                .filter(|(_, y)| *y > 0.0)
                .collect();
            (s, line)
        })
        .collect();
    let max_x = points
        .iter()
        .map(|p| f64::from(p.clients).log2())
        .fold(0.0, f64::max);
    let ys = lines.iter().flat_map(|(_, l)| l.iter().map(|(_, y)| *y));
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
    let clients: Vec<u16> = points.iter().map(|p| p.clients).collect();
    chart
        .configure_mesh()
        .x_desc("clients")
        .y_desc(y_desc)
        .x_labels(max_x as usize + 2)
        .y_labels(10)
        .x_label_formatter(&|x| {
            let count = x.exp2().round();
            if clients.iter().any(|c| f64::from(*c) == count) {
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
    for (series, line) in &lines {
        let color = series.color;
        chart
            .draw_series(LineSeries::new(line.iter().copied(), color.stroke_width(2)))?
            .label(series.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
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
        for series in &SERIES {
            assert!(svg.contains(series.name), "{} in the legend", series.name);
        }
        assert!(svg.contains("removals/s, fsync off"));
        assert!(svg.contains("p99 latency, durable"));
    }
}
