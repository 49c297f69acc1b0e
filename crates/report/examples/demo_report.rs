//! Writes a demo report with every figure type to a directory, from synthetic data shaped like the
//! paper's results (no training): for looking at the figures and for `scripts/check-report.sh`.
//!
//! `cargo run --release -p tms-report --example demo_report -- OUT_DIR`

use std::f64::consts::TAU;
use std::path::PathBuf;

use tms_report::html::{Claim, FigureRef, ReportBuilder, Section, SummaryRow};
use tms_report::*;

fn polygon(k: usize, r: f64, phase: f64) -> Vec<(f64, f64)> {
    (0..k)
        .map(|i| {
            let t = phase + i as f64 / k as f64 * TAU;
            (r * t.cos(), r * t.sin())
        })
        .collect()
}

/// WᵀW (row-major) of columns in the plane.
fn gram(cols: &[(f64, f64)]) -> Vec<f64> {
    let n = cols.len();
    let mut g = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            g[i * n + j] = cols[i].0 * cols[j].0 + cols[i].1 * cols[j].1;
        }
    }
    g
}

fn main() -> Result<(), ReportError> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "demo-report".into()),
    );
    let figs = out.join("figures");

    // E1-like: dense (two orthogonal), intermediate (digons), sparse (pentagon).
    let geoms = [
        (
            "p = 1",
            vec![(1.0, 0.0), (0.0, 1.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0)],
        ),
        (
            "p = 0.19",
            vec![(1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0), (0.0, 0.0)],
        ),
        ("p = 0.05", polygon(5, 1.08, 0.3)),
    ];
    let wtw = heatmap(
        &figs.join("e1_wtw"),
        &HeatmapFigure {
            title: "WᵀW and b across feature density".into(),
            panels: geoms
                .iter()
                .map(|(t, cols)| HeatmapPanel {
                    title: t.to_string(),
                    rows: 5,
                    cols: 5,
                    values: gram(cols),
                    bias: Some(
                        cols.iter()
                            .map(|c| if c.0.hypot(c.1) > 1.05 { -0.3 } else { 0.0 })
                            .collect(),
                    ),
                    ..Default::default()
                })
                .collect(),
            colourbar_label: "WᵀW, b".into(),
            bias_label: "b".into(),
            size: (900, 280),
            ..Default::default()
        },
    )?;
    let geo = arrows(
        &figs.join("e1_arrows"),
        &ArrowsFigure {
            title: "Columns of W (m = 2)".into(),
            panels: geoms
                .iter()
                .map(|(t, cols)| ArrowPanel {
                    title: t.to_string(),
                    vectors: cols.clone(),
                    axes: Vec::new(),
                })
                .collect(),
            feature_labels: (0..5).map(|i| format!("feature {i}")).collect(),
            size: (900, 300),
            ..Default::default()
        },
    )?;
    let norms = bars(
        &figs.join("e2_norms"),
        &BarsFigure {
            title: "‖W_i‖ coloured by superposition".into(),
            panels: [
                ("p = 1", 5, 0.0),
                ("p = 0.1", 9, 0.5),
                ("p = 0.01", 14, 1.0),
            ]
            .iter()
            .map(|&(t, k, s)| BarPanel {
                title: t.into(),
                values: (0..20).map(|i| if i < k { 1.0 } else { 0.02 }).collect(),
                colour_values: (0..20)
                    .map(|i| {
                        if i < 5 {
                            0.0
                        } else if i < k {
                            s
                        } else {
                            0.0
                        }
                    })
                    .collect(),
                labels: Vec::new(),
            })
            .collect(),
            category_label: "feature".into(),
            value_label: "‖W_i‖".into(),
            colour_label: "superposition".into(),
            size: (900, 380),
            ..Default::default()
        },
    )?;
    let phases = {
        let ps: Vec<f64> = (0..20)
            .map(|i| 0.01 * 100f64.powf(i as f64 / 19.0))
            .collect();
        let rs: Vec<f64> = (0..20)
            .map(|i| 0.1 * 100f64.powf(i as f64 / 19.0))
            .collect();
        let mut cells = Vec::new();
        for &r in &rs {
            for &p in &ps {
                let (lo, hi) = (2.0 * p / (4.0 - 5.0 * p), (4.0 - 5.0 * p) / (2.0 * p));
                cells.push(Some(if p > 4.0 / 7.0 {
                    if r < 1.0 {
                        0
                    } else {
                        2
                    }
                } else if r < lo {
                    0
                } else if r > hi {
                    2
                } else {
                    1
                }));
            }
        }
        let curve = |f: fn(f64) -> f64| Polyline {
            label: "theory".into(),
            points: (0..200)
                .map(|i| 0.01 * 100f64.powf(i as f64 / 199.0))
                .filter(|&p| p <= 4.0 / 7.0)
                .map(|p| (p, f(p)))
                .collect(),
        };
        phase_diagram(
            &figs.join("e3_phase"),
            &PhaseDiagram {
                title: "Phase diagram, n = 2, m = 1".into(),
                x_label: "feature density p".into(),
                y_label: "relative importance r".into(),
                x_centres: ps,
                y_centres: rs,
                phases: cells,
                phase_names: vec![
                    "extra not learned".into(),
                    "antipodal (superposition)".into(),
                    "first not learned".into(),
                ],
                boundaries: vec![
                    curve(|p| 2.0 * p / (4.0 - 5.0 * p)),
                    curve(|p| (4.0 - 5.0 * p) / (2.0 * p)),
                ],
                ..Default::default()
            },
        )?
    };
    let dstar = {
        let xs: Vec<f64> = (0..60).map(|i| 10f64.powf(i as f64 / 20.0)).collect();
        let d: Vec<f64> = xs
            .iter()
            .map(|&x| {
                let l = x.log10();
                if l < 0.7 {
                    1.0 - 0.7 * l
                } else if l < 1.6 {
                    0.5
                } else {
                    0.5 - 0.12 * (l - 1.6)
                }
            })
            .collect();
        let levels = [0.75, 2.0 / 3.0, 0.5, 0.4, 0.375, 0.0];
        let sx: Vec<f64> = (0..900).map(|i| xs[i % 60]).collect();
        let sy: Vec<f64> = (0..900)
            .map(|i| levels[(i * 7 + i / 60) % 6] + 0.01 * ((i as f64 * 1.7).sin()))
            .collect();
        line_plot(
            &figs.join("e5_dstar"),
            &LinePlot {
                title: "Dimensions per feature".into(),
                x_label: "1/(1−S)".into(),
                y_label: "D*".into(),
                series: vec![Series {
                    name: "D* = m/‖W‖²_F".into(),
                    x: xs,
                    y: d,
                    ..Default::default()
                }],
                ref_lines: ["¾", "⅔", "½", "⅖", "⅜"]
                    .iter()
                    .zip([0.75, 2.0 / 3.0, 0.5, 0.4, 0.375])
                    .map(|(l, y)| RefLine {
                        y,
                        label: l.to_string(),
                    })
                    .collect(),
                scatter: vec![ScatterOverlay {
                    name: "D_i".into(),
                    x: sx,
                    y: sy,
                    colour: None,
                }],
                log_x: true,
                y_range: Some((-0.02, 1.05)),
                ..Default::default()
            },
        )?
    };
    let saxe = {
        let t: Vec<f64> = (0..300).map(|i| i as f64 * 10.0).collect();
        let s = [7f64.sqrt(), 3f64.sqrt(), 1.0];
        let a = |s: f64, t: f64| {
            let e = (2.0 * s * t / 400.0).exp();
            s * e / (e - 1.0 + s / 1e-4)
        };
        let mut series = Vec::new();
        for (k, &sk) in s.iter().enumerate() {
            series.push(Series {
                name: format!("mode {} (s = {:.2})", k + 1, sk),
                x: t.clone(),
                y: t.iter()
                    .map(|&t| a(sk, t) * (1.0 + 0.01 * (t / 50.0).sin()))
                    .collect(),
                dashed: false,
                colour: Some(k),
            });
            series.push(Series {
                name: if k == 0 {
                    "theory".into()
                } else {
                    String::new()
                },
                x: t.clone(),
                y: t.iter().map(|&t| a(sk, t)).collect(),
                dashed: true,
                colour: Some(k),
            });
        }
        line_plot(
            &figs.join("s1_modes"),
            &LinePlot {
                title: "Mode strengths a_α(t)".into(),
                x_label: "step".into(),
                y_label: "a_α".into(),
                series,
                ..Default::default()
            },
        )?
    };
    let neurons = stacked_bars(
        &figs.join("e11_neurons"),
        &StackedBarsFigure {
            title: "Neuron weights by feature".into(),
            panels: vec![
                StackedBarsPanel {
                    title: "p = 1 (monosemantic)".into(),
                    neurons: 5,
                    weights: (0..5)
                        .flat_map(|j| (0..10).map(move |i| if i == j { 1.0 } else { 0.0 }))
                        .collect(),
                },
                StackedBarsPanel {
                    title: "p = 0.03 (polysemantic)".into(),
                    neurons: 5,
                    weights: (0..5)
                        .flat_map(|j| {
                            (0..10).map(move |i| match (i + 5 * j) % 5 == 0 || i / 2 == j {
                                true if i % 2 == 0 => 0.9,
                                true => -0.3,
                                false => 0.0,
                            })
                        })
                        .collect(),
                },
            ],
            features: 10,
            feature_labels: (0..10).map(|i| format!("feature {i}")).collect(),
            x_label: "neuron".into(),
            y_label: "weight".into(),
            size: (900, 380),
            ..Default::default()
        },
    )?;
    let vuln = scatter(
        &figs.join("e10_vulnerability"),
        &ScatterPlot {
            title: "Vulnerability vs features per dimension".into(),
            x_label: "1/D*".into(),
            y_label: "vulnerability".into(),
            x: vec![1.0, 1.2, 1.6, 2.0, 2.4, 3.1],
            y: vec![1.0, 1.3, 1.9, 2.6, 3.0, 3.9],
            labels: ["p=1", "p=0.3", "p=0.1", "p=0.03", "p=0.01", "p=0.003"]
                .map(String::from)
                .to_vec(),
            colour_values: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            colour_label: "sparsity S".into(),
            ..Default::default()
        },
    )?;
    let cos = heatmap(
        &figs.join("a1_cos"),
        &HeatmapFigure {
            title: "|cos|: singular vectors of W_QK vs planted concepts".into(),
            panels: vec![HeatmapPanel {
                title: String::new(),
                rows: 3,
                cols: 3,
                values: vec![0.998, 0.03, 0.01, 0.02, 0.995, 0.05, 0.01, 0.06, 0.99],
                bias: None,
                row_labels: vec!["σ1".into(), "σ2".into(), "σ3".into()],
                col_labels: vec!["u1".into(), "u2".into(), "u3".into()],
            }],
            range: (0.0, 1.0),
            colormap: Colormap::WhiteRed,
            colourbar_label: "|cos|".into(),
            annotate: true,
            size: (460, 380),
            ..Default::default()
        },
    )?;

    let fig = |p: &FigurePaths, caption: &str| FigureRef {
        path: p.svg.clone(),
        caption: caption.into(),
    };
    let claim = |id: &str, statement: &str, measured: &str, criterion: &str, passed| Claim {
        id: id.into(),
        statement: statement.into(),
        measured: measured.into(),
        criterion: criterion.into(),
        passed,
    };
    let path = ReportBuilder::new("tms demo report (synthetic data)")
        .paragraph("Every figure type of tms-report, drawn from synthetic data shaped like the paper's results. No model was trained.")
        .summary_row(SummaryRow { id: "E1".into(), title: "Intro geometry".into(), claims_passed: 2, claims_total: 2, wall_time_s: 3.2 })
        .summary_row(SummaryRow { id: "E3".into(), title: "Phase diagram 2 → 1".into(), claims_passed: 1, claims_total: 2, wall_time_s: 184.0 })
        .summary_row(SummaryRow { id: "MISC".into(), title: "Other figure types".into(), claims_passed: 0, claims_total: 0, wall_time_s: 0.5 })
        .section(Section {
            id: "E1".into(),
            title: "E1 · Intro geometry".into(),
            settings: vec![("model".into(), "ReLU output".into()), ("n, m".into(), "5, 2".into()), ("importance".into(), "0.9^i".into())],
            paragraphs: vec!["Dense: two orthogonal features. Sparse: a pentagon with negative biases.".into()],
            figures: vec![fig(&wtw, "WᵀW in [−1, 1] with the bias beside it"), fig(&geo, "Columns of W")],
            claims: vec![
                claim("E1.pentagon", "sparsest instance is a pentagon", "D_i = 0.40 ± 0.01", "|D_i − ⅖| < 0.05", true),
                claim("E1.bias", "sparsest instance has negative biases", "max b = −0.29", "max b < 0", true),
            ],
        })
        .section(Section {
            id: "E3".into(),
            title: "E3 · Phase diagram 2 → 1".into(),
            settings: vec![("seeds per cell".into(), "10".into())],
            paragraphs: vec![],
            figures: vec![fig(&phases, "Measured phases with the theory boundaries")],
            claims: vec![
                claim("E3.agree", "phases agree with theory away from boundaries", "97%", "≥ 95%", true),
                claim("E3.triple", "triple point at p = 4/7, r = 1", "p = 0.61", "|p − 4/7| < 0.03", false),
            ],
        })
        .section(Section {
            id: "MISC".into(),
            title: "Other figure types".into(),
            figures: vec![
                fig(&norms, "Bars of ‖W_i‖ coloured by superposition"),
                fig(&dstar, "D* with the D_i scatter and the polytope fractions"),
                fig(&saxe, "Mode strengths with the closed form dashed"),
                fig(&neurons, "Neuron stacked bars"),
                fig(&vuln, "Scatter with labels and a colourbar"),
                FigureRef { path: cos.png.clone(), caption: "Cosine table (inlined as PNG)".into() },
            ],
            ..Default::default()
        })
        .write(&out)?;
    println!("{}", path.display());
    Ok(())
}
