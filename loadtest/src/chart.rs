//! Charts of a run (SVG, drawn with `plotters`): every panel has a time axis in seconds and
//! a value axis with its unit. One run gives stacked panels of its timeline; a comparison
//! draws each relay as one line per panel, so the relays read side by side.

use plotters::prelude::*;

use crate::report::{Report, Tick};

/// Width of a chart, px.
const WIDTH: u32 = 900;
/// Height of one panel, px.
const PANEL: u32 = 220;

/// One panel: title, axis label with unit, and the series drawn in it.
struct Panel {
    title: &'static str,
    unit: &'static str,
    series: Vec<(String, Vec<(f64, f64)>)>,
}

/// Colours of successive series in a panel.
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn points(r: &Report, f: fn(&Tick) -> f64) -> Vec<(f64, f64)> {
    r.timeline.iter().map(|t| (t.t, f(t))).collect()
}

/// The panels of one run: calls, calls/s, packets/s, latency percentiles, loss and the
/// relay's CPU per packet (the last only when a relay process was measured).
pub fn run_chart(r: &Report) -> Result<String, String> {
    let one = |name: &str, f: fn(&Tick) -> f64| vec![(name.to_string(), points(r, f))];
    let mut panels = vec![
        Panel {
            title: "Concurrent calls",
            unit: "calls",
            series: one("calls up", |t| t.calls as f64),
        },
        Panel {
            title: "Call attempts",
            unit: "calls/s",
            series: one("calls started", |t| t.cps),
        },
        Panel {
            title: "Media received",
            unit: "packets/s",
            series: one("packets received", |t| t.pps),
        },
        Panel {
            title: "One-way latency, per second",
            unit: "µs",
            series: vec![
                ("p50".into(), points(r, |t| t.latency_p50_us)),
                ("p99".into(), points(r, |t| t.latency_p99_us)),
            ],
        },
        Panel {
            title: "Loss, cumulative",
            unit: "% of packets sent",
            series: one("loss", |t| t.loss * 100.0),
        },
    ];
    if r.relay.is_some() {
        panels.push(Panel {
            title: "Relay CPU per packet, per second",
            unit: "µs/packet",
            series: one("user + system", |t| t.cpu_us_per_packet),
        });
    }
    draw(&format!("{} run", r.mode), &panels)
}

/// The relays of a comparison, one line each: packets/s, p99 latency, loss and CPU per
/// packet.
pub fn compare_chart(rows: &[Report]) -> Result<String, String> {
    let each = |f: fn(&Tick) -> f64| -> Vec<(String, Vec<(f64, f64)>)> {
        rows.iter()
            .map(|r| (r.mode.clone(), points(r, f)))
            .collect()
    };
    let panels = [
        Panel {
            title: "Media received",
            unit: "packets/s",
            series: each(|t| t.pps),
        },
        Panel {
            title: "One-way latency p99, per second",
            unit: "µs",
            series: each(|t| t.latency_p99_us),
        },
        Panel {
            title: "Loss, cumulative",
            unit: "% of packets sent",
            series: each(|t| t.loss * 100.0),
        },
        Panel {
            title: "Relay CPU per packet, per second",
            unit: "µs/packet",
            series: each(|t| t.cpu_us_per_packet),
        },
    ];
    draw("Relays compared", &panels)
}

fn draw(title: &str, panels: &[Panel]) -> Result<String, String> {
    let n = u32::try_from(panels.len()).map_err(|e| e.to_string())?;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, 40 + n * PANEL)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root
            .titled(title, ("sans-serif", 22))
            .map_err(|e| e.to_string())?;
        let areas = root.split_evenly((panels.len(), 1));
        for (panel, area) in panels.iter().zip(areas.iter()) {
            draw_panel(area, panel)?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    p: &Panel,
) -> Result<(), String> {
    let all = p.series.iter().flat_map(|(_, pts)| pts.iter());
    let (tmax, vmax) = all.fold((1.0f64, 0.0f64), |(t, v), &(x, y)| (t.max(x), v.max(y)));
    // Head room above the highest value; a flat zero still gets a visible axis.
    let vmax = if vmax > 0.0 { vmax * 1.1 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(p.title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..tmax, 0.0..vmax)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc(p.unit)
        .x_labels(10)
        .y_labels(6)
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (name, pts)) in p.series.iter().enumerate() {
        let colour = COLOURS.get(i % COLOURS.len()).copied().unwrap_or(BLACK);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), colour.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::RelayCost;

    fn report(mode: &str, scale: f64, relay: bool) -> Report {
        let mut r = Report {
            mode: mode.into(),
            relay: relay.then(RelayCost::default),
            ..Report::default()
        };
        for i in 0..10u32 {
            let t = f64::from(i);
            r.timeline.push(Tick {
                t,
                calls: u64::from(i) * 10,
                cps: 10.0,
                pps: 1000.0 * t * scale,
                latency_p50_us: 40.0 * scale,
                latency_p99_us: 90.0 * scale,
                loss: 0.0001 * t,
                cpu_us_per_packet: 2.5 * scale,
                ..Tick::default()
            });
        }
        r
    }

    /// Series lines and legend marks: the only strokes two pixels wide (the axes and
    /// ticks are one).
    fn lines(svg: &str) -> usize {
        svg.lines()
            .filter(|l| l.starts_with("<polyline") && l.contains("stroke-width=\"2\""))
            .count()
    }

    /// Texts equal to `t` (plotters writes a text element's content on its own line).
    fn texts(svg: &str, t: &str) -> usize {
        svg.matches(&format!("\n{t}\n</text>")).count()
    }

    #[test]
    fn a_run_chart_has_axes_with_units_and_one_line_per_series() {
        let svg = run_chart(&report("appliance", 1.0, true)).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // Six panels, each with its time axis and its unit.
        assert_eq!(svg.matches("time (s)").count(), 6, "{svg}");
        for unit in [
            "calls/s",
            "packets/s",
            "µs",
            "% of packets sent",
            "µs/packet",
        ] {
            assert!(svg.contains(unit), "no axis labelled {unit}");
        }
        assert_eq!((texts(&svg, "p50"), texts(&svg, "p99")), (1, 1));
        // Seven series (latency has two), each a line in its panel and one in its legend.
        assert_eq!(lines(&svg), 7 + 7, "{svg}");
        // Tick labels: the time axis reaches the last second.
        assert!(texts(&svg, "9") + texts(&svg, "9.0") >= 1, "{svg}");
    }

    #[test]
    fn without_a_measured_relay_there_is_no_cpu_panel() {
        let svg = run_chart(&report("direct", 1.0, false)).unwrap();
        assert_eq!(svg.matches("time (s)").count(), 5);
        assert!(!svg.contains("µs/packet"));
    }

    #[test]
    fn a_comparison_draws_every_relay_in_every_panel() {
        let rows = [
            report("raw", 1.0, true),
            report("rtpengine", 2.0, true),
            report("appliance", 1.5, true),
        ];
        let svg = compare_chart(&rows).unwrap();
        assert_eq!(svg.matches("time (s)").count(), 4);
        for m in ["raw", "rtpengine", "appliance"] {
            assert_eq!(texts(&svg, m), 4, "{m} in every legend");
        }
        assert_eq!(lines(&svg), 2 * 4 * 3);
    }
}
