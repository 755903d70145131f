//! The drawing boilerplate every figure shares: colors, fonts, the legend beside or above
//! the plot, the SVG canvas and the mesh style.

use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{pe, PlotError};

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(214, 39, 40),
];

/// The `i`th series color, cycling through the palette.
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Rings around saturated points.
pub const SATURATED: RGBColor = RGBColor(220, 0, 0);
/// Reference lines (the measured floor).
pub const GREY_LINE: RGBColor = RGBColor(90, 90, 90);
/// Minor grid lines: present, but quieter than plotters' default.
const LIGHT_GRID: RGBColor = RGBColor(240, 240, 240);
/// Rings around points whose generator missed its schedule.
pub const INVALID: RGBColor = RGBColor(230, 140, 0);

/// The sans-serif font at `size` pixels.
pub fn font(size: u32) -> TextStyle<'static> {
    TextStyle::from(("sans-serif", size).into_font())
}

/// How a legend entry shows its series.
#[derive(Clone, Copy)]
pub enum Mark {
    /// A solid line of this width.
    Line(RGBColor, u32),
    /// A dashed line.
    Dashed(RGBColor),
    /// A line with a filled circle on it.
    LineDot(RGBColor),
    /// A filled circle.
    Dot(RGBColor),
    /// A filled triangle.
    Triangle(RGBColor),
    /// A cross.
    Cross(RGBColor),
    /// A hollow ring.
    Ring(RGBColor),
    /// Nothing: a line that continues the entry above.
    Blank,
    /// A filled square (a bar).
    Bar(RGBColor),
}

/// Legend entries kept outside the plotting area, where they cannot hide data.
#[derive(Default)]
pub struct Legend(Vec<(String, Mark)>);

/// Longest legend label kept whole; longer ones are shortened in the middle.
const LEGEND_CHARS: usize = 64;
/// Plot width beside the legend.
pub const PLOT_WIDTH: u32 = 900;

impl Legend {
    /// Adds an entry, shortening a label too long for the legend in the middle.
    pub fn add(&mut self, label: impl Into<String>, mark: Mark) {
        let mut label: String = label.into();
        let n = label.chars().count();
        if n > LEGEND_CHARS {
            let head: String = label.chars().take(LEGEND_CHARS / 2 - 1).collect();
            let tail: String = label.chars().skip(n - LEGEND_CHARS / 2 + 1).collect();
            label = format!("{head}…{tail}");
        }
        self.0.push((label, mark));
    }

    /// Pixels the legend needs beside the plot (about 7 px per character at 13 px).
    pub fn width(&self) -> u32 {
        let chars = self
            .0
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0);
        (chars as u32 * 7 + 70).clamp(180, 560)
    }

    /// Draws the entries one under the other, boxed, in `area`.
    pub fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let (x, top) = (8i32, 40i32);
        let row = 21i32;
        let (w, _) = area.dim_in_pixel();
        let h = row * self.0.len() as i32 + 12;
        area.draw(&Rectangle::new(
            [(x, top), (w as i32 - 10, top + h)],
            RGBColor(120, 120, 120).stroke_width(1),
        ))
        .map_err(pe)?;
        for (i, (label, mark)) in self.0.iter().enumerate() {
            let y = top + 16 + row * i as i32;
            let (a, b, c) = (x + 10, x + 22, x + 34);
            let r = match *mark {
                Mark::Line(col, width) => area.draw(&PathElement::new(
                    vec![(a, y), (c, y)],
                    col.stroke_width(width),
                )),
                Mark::Dashed(col) => area
                    .draw(&PathElement::new(
                        vec![(a, y), (a + 9, y)],
                        col.stroke_width(2),
                    ))
                    .and_then(|_| {
                        area.draw(&PathElement::new(
                            vec![(a + 15, y), (c, y)],
                            col.stroke_width(2),
                        ))
                    }),
                Mark::LineDot(col) => area
                    .draw(&PathElement::new(vec![(a, y), (c, y)], col.stroke_width(2)))
                    .and_then(|_| area.draw(&Circle::new((b, y), 4, col.filled()))),
                Mark::Dot(col) => area.draw(&Circle::new((b, y), 4, col.filled())),
                Mark::Triangle(col) => area.draw(&TriangleMarker::new((b, y), 5, col.filled())),
                Mark::Cross(col) => area.draw(&Cross::new((b, y), 5, col.stroke_width(2))),
                Mark::Ring(col) => area.draw(&Circle::new((b, y), 7, col.stroke_width(2))),
                Mark::Bar(col) => area.draw(&Rectangle::new(
                    [(b - 6, y - 6), (b + 6, y + 6)],
                    col.filled(),
                )),
                Mark::Blank => Ok(()),
            };
            r.map_err(pe)?;
            area.draw(&Text::new(label.clone(), (c + 10, y - 7), font(13)))
                .map_err(pe)?;
        }
        Ok(())
    }

    /// Draws the entries side by side on one line, centred (for short legends over panels).
    pub fn draw_row<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), PlotError> {
        let widths: Vec<i32> = self
            .0
            .iter()
            .map(|(l, _)| 30 + 8 * l.chars().count() as i32 + 24)
            .collect();
        let (w, h) = area.dim_in_pixel();
        let mut x = (w as i32 - widths.iter().sum::<i32>()) / 2;
        let y = h as i32 / 2;
        for ((label, mark), width) in self.0.iter().zip(widths) {
            if let Mark::Bar(col) = mark {
                area.draw(&Rectangle::new([(x, y - 6), (x + 14, y + 6)], col.filled()))
                    .map_err(pe)?;
            }
            area.draw(&Text::new(label.clone(), (x + 22, y - 7), font(14)))
                .map_err(pe)?;
            x += width;
        }
        Ok(())
    }
}

/// Splits the canvas under `title` into the plot (left) and the legend (right).
pub fn with_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    legend: &Legend,
) -> Result<DrawingArea<DB, Shift>, PlotError> {
    let body = root.titled(title, font(22)).map_err(pe)?;
    let (plot, side) = body.split_horizontally(PLOT_WIDTH);
    legend.draw(&side)?;
    Ok(plot)
}

/// Renders into an SVG string of `size` pixels.
pub fn svg<F>(size: (u32, u32), draw: F) -> Result<String, PlotError>
where
    F: for<'a> FnOnce(&DrawingArea<SVGBackend<'a>, Shift>) -> Result<(), PlotError>,
{
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE).map_err(pe)?;
        draw(&root)?;
        root.present().map_err(pe)?;
    }
    Ok(out)
}

/// A chart on `area` with the margins and label room of a one-plot figure (`right` pixels
/// of margin on the right, where a last tick label may need room).
#[allow(clippy::type_complexity)]
pub fn figure_chart<'a, DB: DrawingBackend, X: AsRangedCoord, Y: AsRangedCoord>(
    area: &'a DrawingArea<DB, Shift>,
    x: X,
    y: Y,
    right: u32,
) -> Result<ChartContext<'a, DB, Cartesian2d<X::CoordDescType, Y::CoordDescType>>, PlotError> {
    ChartBuilder::on(area)
        .margin(15)
        .margin_right(right)
        .x_label_area_size(50)
        .y_label_area_size(75)
        .build_cartesian_2d(x, y)
        .map_err(pe)
}

/// The mesh every chart shares: a quiet minor grid, axis descriptions at `desc` pixels and
/// tick labels at `labels` pixels; the caller adds the descriptions and formatters.
pub fn styled<'m, 'a, 'b, X, Y, DB>(
    mesh: &'m mut MeshStyle<'a, 'b, X, Y, DB>,
    desc: u32,
    labels: u32,
) -> &'m mut MeshStyle<'a, 'b, X, Y, DB>
where
    X: Ranged,
    Y: Ranged,
    DB: DrawingBackend,
{
    mesh.light_line_style(LIGHT_GRID)
        .axis_desc_style(font(desc))
        .label_style(font(labels))
}
