//! Figures of a run, drawn with plotters into memory (the caller writes the files).
//!
//! Every still figure is [`WIDTH`] x [`HEIGHT`] pixels, as PNG or SVG; the animation is a GIF
//! of [`FRAME_WIDTH`] x [`FRAME_HEIGHT`]. Text uses DejaVu Sans, compiled in, so figures look
//! the same on every machine.

use std::fmt::Display;
use std::ops::Range;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Output format of a still figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A PNG image.
    Png,
    /// An SVG document.
    Svg,
}

impl Format {
    /// The file extension of the format, without the dot: `"png"` or `"svg"`.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Svg => "svg",
        }
    }
}

/// Why a figure could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Drawing or encoding the figure failed.
    #[error("cannot draw {figure}: {message}")]
    Draw {
        /// Which figure.
        figure: String,
        /// What went wrong.
        message: String,
    },
}

/// One line of a line chart.
pub struct Series {
    /// The name shown in the legend.
    pub name: String,
    /// The points, in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// A line chart: one or more series over a shared x axis.
pub struct LineChart {
    /// The title above the chart.
    pub title: String,
    /// The description of the x axis.
    pub x_label: String,
    /// The description of the y axis.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Whether the x axis is logarithmic.
    pub log_x: bool,
    /// Whether the y axis is logarithmic.
    pub log_y: bool,
    /// a vertical marker, e.g. the suggested learning rate
    pub marker: Option<(String, f64)>,
}

/// Width of every still figure, pixels (PNG); SVG has the same viewBox.
pub const WIDTH: u32 = 800;
/// Height of every still figure, pixels (PNG); SVG has the same viewBox.
pub const HEIGHT: u32 = 600;
/// Width of the animation's frames, pixels.
pub const FRAME_WIDTH: u32 = 480;
/// Height of the animation's frames, pixels.
pub const FRAME_HEIGHT: u32 = 360;

/// One small image with a caption, for the grids of validation results and top losses.
pub struct GridImage {
    /// `side * side` values in [0, 1], row-major, 1 = ink (the built-in grey sets); or with
    /// `colour`, `3 * side * side` values in [0, 1], channel-major red, green, blue, drawn as
    /// they are (a folder's pictures).
    pub pixels: Vec<f32>,
    /// Whether `pixels` are a picture's true colours.
    pub colour: bool,
    /// The number of pixels along each side.
    pub side: usize,
    /// The caption under the image, e.g. "3 / 8" (true / predicted).
    pub caption: String,
    /// Whether the prediction is wrong: the caption is then drawn red, else green.
    pub wrong: bool,
}

const FONT_BYTES: &[u8] = include_bytes!("../../../../assets/fonts/DejaVuSans.ttf");
pub(super) const FONT: &str = "sans-serif";
pub(super) const TITLE_SIZE: u32 = 22;
pub(super) const LABEL_SIZE: u32 = 18;
pub(super) const TICK_SIZE: u32 = 15;
const COLOURS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];
const DATA_BLUE: RGBColor = COLOURS[0];
const DATA_ORANGE: RGBColor = COLOURS[1];
const FIT_RED: RGBColor = COLOURS[3];
const GUESS_GRAY: RGBColor = RGBColor(130, 130, 130);
const MARKER_GRAY: RGBColor = RGBColor(60, 60, 60);
const RIGHT_GREEN: RGBColor = RGBColor(0, 130, 0);
const WRONG_RED: RGBColor = RGBColor(200, 0, 0);

type AreaError<DB> = DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>;
pub(super) type DrawResult<DB> = Result<(), AreaError<DB>>;

/// Something drawable on any backend.
pub(super) trait Figure {
    /// How error messages name the figure.
    fn name(&self) -> String;
    /// Draws the whole figure on `root`.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// The notebook's figure: the data (x = first column of a feature row, y) as a scatter, the
/// initial guess line y = g0·x + g1 and the fitted line y = f0·x + f1, with a legend.
pub fn fit_plot(
    points: &[(f64, f64)],
    guess: [f64; 2],
    fitted: [f64; 2],
    format: Format,
) -> Result<Vec<u8>, PlotError> {
    let title = "Linear fit by gradient descent";
    render(&FitPlot { points, guess: Some(guess), fitted: Some(fitted), title }, format)
}

/// [`fit_plot`] drawn with only the lines given, under `title`: the data alone (the notebook's
/// first scatter), the data and the guess, or all three.
pub fn lines_plot(
    points: &[(f64, f64)],
    (guess, fitted): (Option<[f64; 2]>, Option<[f64; 2]>),
    title: &str,
    format: Format,
) -> Result<Vec<u8>, PlotError> {
    render(&FitPlot { points, guess, fitted, title }, format)
}

/// A regression's predictions against the true targets: one scatter per split (training rows
/// blue, validation rows orange), with the diagonal y = x where perfect predictions lie. Pass at
/// most [`MAX_SCATTER`] points of each split ([`scatter_rows`] picks them).
pub fn prediction_plot(
    title: &str,
    train: &[(f64, f64)],
    valid: &[(f64, f64)],
    format: Format,
) -> Result<Vec<u8>, PlotError> {
    render(&PredictionPlot { title, train, valid }, format)
}

/// The most points a scatter should hold: every point of the lesson, a readable sample of a
/// table of millions.
pub const MAX_SCATTER: usize = 2000;

/// The rows of a table of `rows` rows to draw in a scatter: all of them up to [`MAX_SCATTER`],
/// else that many, evenly spaced. Callers build only these points, not one per row.
pub fn scatter_rows(rows: usize) -> impl Iterator<Item = usize> {
    (0..rows).step_by(rows.div_ceil(MAX_SCATTER).max(1))
}

/// A line chart (loss curves, accuracy, lr over steps, the lr finder). Non-finite and (on log
/// axes) non-positive values are skipped; an empty chart (no drawable point) still renders axes
/// and the title.
pub fn line_chart(chart: &LineChart, format: Format) -> Result<Vec<u8>, PlotError> {
    render(chart, format)
}

/// Charts side by side in one figure, their points drawn as dots (a sweep's metric against each
/// swept value): one panel per chart, in rows of at most two.
pub fn panels(charts: &[LineChart], format: Format) -> Result<Vec<u8>, PlotError> {
    render(&Panels(charts), format)
}

struct Panels<'a>(&'a [LineChart]);

impl Figure for Panels<'_> {
    fn name(&self) -> String {
        format!("{} panels", self.0.len())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let columns = self.0.len().clamp(1, 2);
        let rows = self.0.len().div_ceil(columns).max(1);
        for (area, chart) in root.split_evenly((rows, columns)).iter().zip(self.0) {
            chart.draw_chart(area, false)?;
        }
        Ok(())
    }
}

/// fastai's show_results: images in a grid of `columns` columns (at least one), each with its
/// caption (dark ink on white; caption green when right, red when wrong).
pub fn image_grid(
    images: &[GridImage],
    columns: usize,
    title: &str,
    format: Format,
) -> Result<Vec<u8>, PlotError> {
    let grid = ImageGrid { images, columns: columns.max(1), title };
    let values = |image: &GridImage| if image.colour { 3 } else { 1 } * image.side * image.side;
    if let Some((index, image)) =
        images.iter().enumerate().find(|(_, image)| image.pixels.len() != values(image))
    {
        let message = format!("image {index} has {} values, not {}", image.pixels.len(), values(image));
        return Err(PlotError::Draw { figure: grid.name(), message });
    }
    render(&grid, format)
}

/// The notebook's animation as an animated GIF: the data points in orange (fixed axes chosen
/// from the data, x in [min,max] with margin, y likewise and covering every line drawn), and
/// for each entry of `frames` (the parameters a = (slope, intercept) after each step, and that
/// step's loss) one frame with the line y = a0·x + a1, and "step k  loss L" (k = 1-based frame
/// index, loss with 4 decimals) in the top-left corner. `delay_ms` per frame (GIF delays are
/// in 1/100 s: 20 ms = 2), loops forever. Size FRAME_WIDTH x FRAME_HEIGHT. Returns the file's
/// bytes. With no frames at all, the GIF has one frame showing the data alone.
pub fn animation(
    points: &[(f64, f64)],
    frames: &[([f64; 2], f64)],
    delay_ms: u16,
) -> Result<Vec<u8>, PlotError> {
    let x = padded_range(points.iter().map(|p| p.0), false);
    let line_ends = frames.iter().flat_map(|(a, _)| line_points(*a, &x)).map(|p| p.1);
    let y = padded_range(points.iter().map(|p| p.1).chain(line_ends), false);
    let steps: Vec<Option<(usize, [f64; 2], f64)>> = if frames.is_empty() {
        vec![None]
    } else {
        frames.iter().enumerate().map(|(k, &(a, loss))| Some((k + 1, a, loss))).collect()
    };
    let (width, height) = (FRAME_WIDTH as u16, FRAME_HEIGHT as u16);
    let palette = Palette::get();
    let mut encoder = gif::Encoder::new(Vec::new(), width, height, &palette.rgb).map_err(gif_error)?;
    encoder.set_repeat(gif::Repeat::Infinite).map_err(gif_error)?;
    let mut previous: Option<Vec<u8>> = None;
    for step in steps {
        let figure = AnimationFrame { points, x: x.clone(), y: y.clone(), step };
        let indices = palette.indices(&rasterize(&figure, FRAME_WIDTH, FRAME_HEIGHT)?);
        let mut frame = gif_frame(&indices, previous.as_deref());
        frame.delay = delay_ms / 10;
        encoder.write_frame(&frame).map_err(gif_error)?;
        previous = Some(indices);
    }
    encoder.into_inner().map_err(gif_error)
}

/// The palette index that marks a pixel as unchanged from the previous frame.
const UNCHANGED: u8 = 255;

/// A full-size frame that, after the first, leaves the pixels the previous frame already has
/// transparent: long runs of one index, which LZW packs into almost nothing.
fn gif_frame(indices: &[u8], previous: Option<&[u8]>) -> gif::Frame<'static> {
    let (width, height) = (FRAME_WIDTH as u16, FRAME_HEIGHT as u16);
    let Some(previous) = previous else {
        return gif::Frame::from_indexed_pixels(width, height, indices, None);
    };
    let changes: Vec<u8> =
        indices.iter().zip(previous).map(|(&i, &p)| if i == p { UNCHANGED } else { i }).collect();
    let mut frame = gif::Frame::from_indexed_pixels(width, height, changes, Some(UNCHANGED));
    frame.dispose = gif::DisposalMethod::Keep;
    frame
}

/// The animation's fixed palette: grays, and the data orange and line blue blended with white,
/// black and each other, so that antialiased edges keep their hue. Quantizing with it is a
/// table lookup, some 30 times faster than NeuQuant (`gif::Frame::from_rgb_speed`).
struct Palette {
    /// 255 colours and [`UNCHANGED`], `[r, g, b, r, g, b, ...]`.
    rgb: Vec<u8>,
    /// The nearest colour's index for each RGB colour cut to 5 bits a channel.
    lookup: Vec<u8>,
}

impl Palette {
    fn get() -> &'static Palette {
        static PALETTE: OnceLock<Palette> = OnceLock::new();
        PALETTE.get_or_init(Palette::new)
    }

    fn new() -> Palette {
        let blend = |from: RGBColor, to: RGBColor, steps: i32| {
            let mix =
                move |a: u8, b: u8, i: i32| (i32::from(a) + (i32::from(b) - i32::from(a)) * i / steps) as u8;
            (1..=steps).map(move |i| [mix(from.0, to.0, i), mix(from.1, to.1, i), mix(from.2, to.2, i)])
        };
        let colours: Vec<[u8; 3]> = blend(BLACK, WHITE, 63)
            .chain([[0, 0, 0]])
            .chain(blend(WHITE, DATA_ORANGE, 64))
            .chain(blend(WHITE, DATA_BLUE, 64))
            .chain(blend(DATA_ORANGE, DATA_BLUE, 32))
            .chain(blend(BLACK, DATA_ORANGE, 16))
            .chain(blend(BLACK, DATA_BLUE, 15))
            .collect();
        let widen = |bits: usize| ((bits << 3) | (bits >> 2)) as i32;
        let lookup = (0..1 << 15)
            .map(|key: usize| nearest(&colours, [widen(key >> 10), widen((key >> 5) & 31), widen(key & 31)]))
            .collect();
        Palette { rgb: [colours.concat(), vec![255; 3]].concat(), lookup }
    }

    /// The palette index of each pixel of an RGB buffer.
    fn indices(&self, rgb: &[u8]) -> Vec<u8> {
        let key = |p: &[u8]| {
            (usize::from(p[0] >> 3) << 10) | (usize::from(p[1] >> 3) << 5) | usize::from(p[2] >> 3)
        };
        rgb.chunks_exact(3).map(|p| self.lookup[key(p)]).collect()
    }
}

/// The index of the colour nearest to `target`.
fn nearest(colours: &[[u8; 3]], target: [i32; 3]) -> u8 {
    let distance = |c: &[u8; 3]| (0..3).map(|k| (i32::from(c[k]) - target[k]).pow(2)).sum::<i32>();
    colours.iter().enumerate().min_by_key(|(_, c)| distance(c)).map_or(0, |(index, _)| index as u8)
}

fn gif_error(error: gif::EncodingError) -> PlotError {
    draw_error("animation", error)
}

fn draw_error(figure: &str, message: impl Display) -> PlotError {
    PlotError::Draw { figure: figure.to_string(), message: message.to_string() }
}

/// Registers the embedded font with plotters, once per process.
fn ensure_font(figure: &str) -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = *REGISTERED.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok());
    if registered { Ok(()) } else { Err(draw_error(figure, "the embedded font is not a valid font")) }
}

/// Draws a still figure in `format`.
pub(super) fn render(figure: &impl Figure, format: Format) -> Result<Vec<u8>, PlotError> {
    match format {
        Format::Png => {
            let rgb = rasterize(figure, WIDTH, HEIGHT)?;
            encode_png(&rgb, WIDTH, HEIGHT).map_err(|error| draw_error(&figure.name(), error))
        }
        Format::Svg => {
            ensure_font(&figure.name())?;
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
                figure
                    .draw(&root)
                    .and_then(|()| root.present())
                    .map_err(|e| draw_error(&figure.name(), e))?;
            }
            Ok(svg.into_bytes())
        }
    }
}

/// Draws `figure` into an RGB buffer of `width` x `height` pixels.
fn rasterize(figure: &impl Figure, width: u32, height: u32) -> Result<Vec<u8>, PlotError> {
    ensure_font(&figure.name())?;
    let mut rgb = vec![0; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        figure.draw(&root).and_then(|()| root.present()).map_err(|e| draw_error(&figure.name(), e))?;
    }
    Ok(rgb)
}

pub(crate) fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, png::EncodingError> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(bytes)
}

/// Whether `value` can be placed on an axis: finite, positive on a log axis, and within sizes
/// whose padded span does not overflow (plotters then loops forever looking for ticks).
fn drawable(value: f64, log: bool) -> bool {
    if log { (1e-100..1e100).contains(&value) } else { value.abs() < 1e200 }
}

/// The range of the drawable `values`, with a 5% margin each side (in log space on a log axis).
fn padded_range(values: impl Iterator<Item = f64>, log: bool) -> Range<f64> {
    let to_axis = |v: f64| if log { v.log10() } else { v };
    let (lo, hi) = values
        .filter(|&v| drawable(v, log))
        .map(to_axis)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let from_axis = |v: f64| if log { 10f64.powf(v) } else { v };
    if lo > hi {
        return from_axis(0.0)..from_axis(1.0);
    }
    let pad = if hi > lo { (hi - lo) * 0.05 } else { (lo.abs() * 0.05).max(0.5) };
    from_axis(lo - pad)..from_axis(hi + pad)
}

/// The line y = a0·x + a1 at both ends of `x`, if drawable.
fn line_points(a: [f64; 2], x: &Range<f64>) -> Vec<(f64, f64)> {
    let ends = [(x.start, a[0] * x.start + a[1]), (x.end, a[0] * x.end + a[1])];
    if ends.iter().all(|p| drawable(p.1, false)) { ends.to_vec() } else { Vec::new() }
}

/// A tick label with about four significant digits, scientific when very small or large.
fn tick_label(value: &f64) -> String {
    let magnitude = value.abs();
    if magnitude < 1e-12 {
        return "0".to_string();
    }
    if !(1e-3..1e5).contains(&magnitude) {
        let text = format!("{value:.2e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        return format!("{}e{exponent}", trim_zeros(mantissa));
    }
    let decimals = (3 - magnitude.log10().floor() as i32).clamp(0, 6) as usize;
    trim_zeros(&format!("{value:.decimals$}")).to_string()
}

fn trim_zeros(number: &str) -> &str {
    if number.contains('.') { number.trim_end_matches('0').trim_end_matches('.') } else { number }
}

/// A chart with the house style: title, axis descriptions, light grid.
fn styled_chart<'a, DB: DrawingBackend, X, Y>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    (x_label, y_label): (&str, &str),
    (x, y): (X, Y),
) -> Result<ChartContext<'a, DB, Cartesian2d<X, Y>>, AreaError<DB>>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, TITLE_SIZE))
        .margin(16)
        .x_label_area_size(52)
        .y_label_area_size(76)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .axis_desc_style((FONT, LABEL_SIZE))
        .label_style((FONT, TICK_SIZE))
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(RGBColor(242, 242, 242))
        .x_label_formatter(&tick_label)
        .y_label_formatter(&tick_label)
        .draw()?;
    Ok(chart)
}

/// The legend, in an upper corner.
fn draw_legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> DrawResult<DB> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(170, 170, 170))
        .label_font((FONT, 16))
        .draw()
}

fn legend_line(colour: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
}

struct FitPlot<'a> {
    points: &'a [(f64, f64)],
    guess: Option<[f64; 2]>,
    fitted: Option<[f64; 2]>,
    title: &'a str,
}

impl Figure for FitPlot<'_> {
    fn name(&self) -> String {
        "fit plot".to_string()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let points: Vec<(f64, f64)> =
            self.points.iter().copied().filter(|p| drawable(p.0, false) && drawable(p.1, false)).collect();
        let x = padded_range(points.iter().map(|p| p.0), false);
        let line = |a: Option<[f64; 2]>| a.map(|a| line_points(a, &x)).unwrap_or_default();
        let (guess, fitted) = (line(self.guess), line(self.fitted));
        let y = padded_range(points.iter().chain(&guess).chain(&fitted).map(|p| p.1), false);
        let ranges = (RangedCoordf64::from(x), RangedCoordf64::from(y));
        let mut chart = styled_chart(root, self.title, ("x", "y"), ranges)?;
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, DATA_BLUE.filled())))?
            .label("data")
            .legend(|(x, y)| Circle::new((x + 12, y), 3, DATA_BLUE.filled()));
        if let Some([g0, g1]) = self.guess {
            chart
                .draw_series(DashedLineSeries::new(guess, 10, 6, GUESS_GRAY.stroke_width(2)))?
                .label(format!("initial guess ({g0:.3}, {g1:.3})"))
                .legend(legend_line(GUESS_GRAY));
        }
        if let Some([f0, f1]) = self.fitted {
            chart
                .draw_series(LineSeries::new(fitted, FIT_RED.stroke_width(3)))?
                .label(format!("fit ({f0:.3}, {f1:.3})"))
                .legend(legend_line(FIT_RED));
        }
        // Rising data (or a rising fit) leave the upper-left corner empty.
        let slope = self.fitted.map_or_else(|| trend(&points), |a| a[0]);
        let corner =
            if slope > 0.0 { SeriesLabelPosition::UpperLeft } else { SeriesLabelPosition::UpperRight };
        draw_legend(&mut chart, corner)
    }
}

/// The sign of the points' trend: their covariance of x and y.
fn trend(points: &[(f64, f64)]) -> f64 {
    let n = points.len().max(1) as f64;
    let (mx, my) = points.iter().fold((0.0, 0.0), |(x, y), p| (x + p.0 / n, y + p.1 / n));
    points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum()
}

struct PredictionPlot<'a> {
    title: &'a str,
    train: &'a [(f64, f64)],
    valid: &'a [(f64, f64)],
}

/// The drawable ones of `points`.
fn drawable_points(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points.iter().copied().filter(|p| drawable(p.0, false) && drawable(p.1, false)).collect()
}

impl Figure for PredictionPlot<'_> {
    fn name(&self) -> String {
        "prediction plot".to_string()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (train, valid) = (drawable_points(self.train), drawable_points(self.valid));
        let range = padded_range(train.iter().chain(&valid).flat_map(|p| [p.0, p.1]), false);
        let ranges = (RangedCoordf64::from(range.clone()), RangedCoordf64::from(range.clone()));
        let mut chart = styled_chart(root, self.title, ("true value", "prediction"), ranges)?;
        chart
            .draw_series(LineSeries::new(
                [(range.start, range.start), (range.end, range.end)],
                GUESS_GRAY.stroke_width(2),
            ))?
            .label("prediction = true value")
            .legend(legend_line(GUESS_GRAY));
        for (points, colour, name) in
            [(&train, DATA_BLUE, "training rows"), (&valid, DATA_ORANGE, "validation rows")]
        {
            if points.is_empty() {
                continue;
            }
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 2, colour.mix(0.6).filled())))?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 12, y), 3, colour.filled()));
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
    }
}

impl LineChart {
    /// Each series' drawable points.
    fn drawable_points(&self) -> Vec<Vec<(f64, f64)>> {
        let keep = |p: &&(f64, f64)| drawable(p.0, self.log_x) && drawable(p.1, self.log_y);
        self.series.iter().map(|s| s.points.iter().filter(keep).copied().collect()).collect()
    }

    fn draw_on<DB: DrawingBackend, X, Y>(
        &self,
        root: &DrawingArea<DB, Shift>,
        ranges: (X, Y),
        lines: &[Vec<(f64, f64)>],
        joined: bool,
    ) -> DrawResult<DB>
    where
        X: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let labels = (self.x_label.as_str(), self.y_label.as_str());
        let mut chart = styled_chart(root, &self.title, labels, ranges)?;
        for (index, (series, points)) in self.series.iter().zip(lines).enumerate() {
            let colour = COLOURS[index % COLOURS.len()];
            let style = colour.stroke_width(2);
            let dots = if points.len() == 1 || !joined { points.clone() } else { Vec::new() };
            chart.draw_series(dots.into_iter().map(|p| Circle::new(p, 4, colour.filled())))?;
            let line = if joined { points.clone() } else { Vec::new() };
            chart
                .draw_series(LineSeries::new(line, style))?
                .label(series.name.as_str())
                .legend(legend_line(colour));
        }
        if let Some((name, x)) = self.marker.as_ref().filter(|m| drawable(m.1, self.log_x)) {
            let y = chart.y_range();
            let line = [(*x, y.start), (*x, y.end)];
            chart
                .draw_series(DashedLineSeries::new(line, 8, 5, MARKER_GRAY.stroke_width(2)))?
                .label(name.as_str())
                .legend(legend_line(MARKER_GRAY));
        }
        if self.series.is_empty() && self.marker.is_none() {
            Ok(())
        } else {
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
        }
    }
}

impl Figure for LineChart {
    fn name(&self) -> String {
        format!("line chart {:?}", self.title)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        self.draw_chart(root, true)
    }
}

impl LineChart {
    /// The chart on `root`: its series as lines through their points (`joined`), or as dots.
    fn draw_chart<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, joined: bool) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let lines = self.drawable_points();
        let marker = self.marker.iter().map(|m| m.1);
        let x = padded_range(lines.iter().flatten().map(|p| p.0).chain(marker), self.log_x);
        let y = padded_range(lines.iter().flatten().map(|p| p.1), self.log_y);
        let (linear, log) = (RangedCoordf64::from, |r: Range<f64>| LogCoord::from(r.log_scale()));
        match (self.log_x, self.log_y) {
            (false, false) => self.draw_on(root, (linear(x), linear(y)), &lines, joined),
            (false, true) => self.draw_on(root, (linear(x), log(y)), &lines, joined),
            (true, false) => self.draw_on(root, (log(x), linear(y)), &lines, joined),
            (true, true) => self.draw_on(root, (log(x), log(y)), &lines, joined),
        }
    }
}

struct ImageGrid<'a> {
    images: &'a [GridImage],
    columns: usize,
    title: &'a str,
}

impl Figure for ImageGrid<'_> {
    fn name(&self) -> String {
        format!("image grid {:?}", self.title)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let body = root.margin(10, 0, 0, 0).titled(self.title, (FONT, TITLE_SIZE))?.margin(6, 8, 12, 12);
        let rows = self.images.len().div_ceil(self.columns).max(1);
        for (cell, image) in body.split_evenly((rows, self.columns)).iter().zip(self.images) {
            draw_grid_cell(cell, image)?;
        }
        Ok(())
    }
}

/// One image of the grid, centred in its cell, with its caption below.
fn draw_grid_cell<DB: DrawingBackend>(cell: &DrawingArea<DB, Shift>, image: &GridImage) -> DrawResult<DB> {
    let (width, height) = cell.dim_in_pixel();
    let caption_lines = image.caption.lines().count().max(1);
    let caption_size = (f64::from(height) * 0.12 / caption_lines as f64).clamp(10.0, 18.0);
    let room = f64::from(width).min(f64::from(height) - caption_size * caption_lines as f64 - 8.0);
    let size = (room * 0.92).max(1.0) as i32;
    let (left, top) = ((width as i32 - size) / 2, 2);
    let edge = |i: usize| i as i32 * size / image.side.max(1) as i32;
    cell.draw(&Rectangle::new([(left - 1, top - 1), (left + size, top + size)], RGBColor(190, 190, 190)))?;
    if image.colour {
        let plane = image.side * image.side;
        let byte = |v: f32| (255.0 * v.clamp(0.0, 1.0)).round() as u8;
        for index in 0..plane {
            let (row, column) = (index / image.side, index % image.side);
            let [r, g, b] = [0, 1, 2].map(|c| byte(image.pixels[c * plane + index]));
            let corners =
                [(left + edge(column), top + edge(row)), (left + edge(column + 1), top + edge(row + 1))];
            cell.draw(&Rectangle::new(corners, RGBColor(r, g, b).filled()))?;
        }
    }
    for (index, &value) in image.pixels.iter().enumerate().filter(|(_, v)| !image.colour && **v > 0.01) {
        let (row, column) = (index / image.side, index % image.side);
        let shade = (255.0 * (1.0 - value.min(1.0))).round() as u8;
        let corners =
            [(left + edge(column), top + edge(row)), (left + edge(column + 1), top + edge(row + 1))];
        cell.draw(&Rectangle::new(corners, RGBColor(shade, shade, shade).filled()))?;
    }
    let colour = if image.wrong { WRONG_RED } else { RIGHT_GREEN };
    let style = (FONT, caption_size).into_font().color(&colour).pos(Pos::new(HPos::Center, VPos::Top));
    for (index, line) in image.caption.lines().enumerate() {
        let y = top + size + 4 + (index as f64 * caption_size * 1.1) as i32;
        cell.draw(&Text::new(line, (width as i32 / 2, y), style.clone()))?;
    }
    Ok(())
}

struct AnimationFrame<'a> {
    points: &'a [(f64, f64)],
    x: Range<f64>,
    y: Range<f64>,
    /// The 1-based step, its parameters and its loss; none for the data alone.
    step: Option<(usize, [f64; 2], f64)>,
}

impl Figure for AnimationFrame<'_> {
    fn name(&self) -> String {
        format!("animation frame {}", self.step.map_or(0, |s| s.0))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .margin_top(34)
            .x_label_area_size(30)
            .y_label_area_size(56)
            .build_cartesian_2d(self.x.clone(), self.y.clone())?;
        chart
            .configure_mesh()
            .label_style((FONT, 13))
            .x_labels(7)
            .bold_line_style(RGBColor(215, 215, 215))
            .light_line_style(RGBColor(242, 242, 242))
            .x_label_formatter(&tick_label)
            .y_label_formatter(&tick_label)
            .draw()?;
        let finite = self.points.iter().filter(|p| drawable(p.0, false) && drawable(p.1, false));
        chart.draw_series(finite.map(|&p| Circle::new(p, 3, DATA_ORANGE.filled())))?;
        let Some((step, a, loss)) = self.step else { return Ok(()) };
        chart.draw_series(LineSeries::new(line_points(a, &self.x), DATA_BLUE.stroke_width(3)))?;
        let text = format!("step {step}  loss {loss:.4}");
        root.draw(&Text::new(text, (12, 8), (FONT, 18).into_font().color(&BLACK)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// Decodes a PNG into (width, height, RGB pixels).
    fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<[u8; 3]>) {
        let mut reader = png::Decoder::new(Cursor::new(bytes)).read_info().expect("png header");
        let mut buffer = vec![0; reader.output_buffer_size().expect("buffer size")];
        let info = reader.next_frame(&mut buffer).expect("png frame");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        let pixels = buffer[..info.buffer_size()].chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
        (info.width, info.height, pixels)
    }

    fn count(pixels: &[[u8; 3]], colour: RGBColor) -> usize {
        pixels.iter().filter(|p| **p == [colour.0, colour.1, colour.2]).count()
    }

    fn non_white(pixels: &[[u8; 3]]) -> usize {
        pixels.len() - count(pixels, WHITE)
    }

    fn line_points_sample() -> Vec<(f64, f64)> {
        (0..50).map(|i| f64::from(i) / 10.0).map(|x| (x, 3.0 * x + 2.0 + (x * 7.0).sin())).collect()
    }

    fn chart(log_y: bool, points: Vec<(f64, f64)>) -> LineChart {
        LineChart {
            title: "loss curves".into(),
            x_label: "step".into(),
            y_label: "loss".into(),
            series: vec![Series { name: "train".into(), points }],
            log_x: false,
            log_y,
            marker: None,
        }
    }

    #[test]
    fn extensions() {
        assert_eq!(Format::Png.extension(), "png");
        assert_eq!(Format::Svg.extension(), "svg");
    }

    #[test]
    fn fit_plot_png_is_800x600_with_the_red_fit() {
        let png = fit_plot(&line_points_sample(), [1.0, 0.0], [3.0, 2.0], Format::Png).unwrap();
        let (width, height, pixels) = decode_png(&png);
        assert_eq!((width, height), (WIDTH, HEIGHT));
        assert!(non_white(&pixels) > 10_000, "only {} non-white pixels", non_white(&pixels));
        assert!(count(&pixels, FIT_RED) > 500, "fit line: {} red pixels", count(&pixels, FIT_RED));
        assert!(count(&pixels, DATA_BLUE) > 200, "data: {} blue pixels", count(&pixels, DATA_BLUE));
    }

    #[test]
    fn svg_starts_with_svg_and_holds_the_title() {
        let svg = line_chart(&chart(false, line_points_sample()), Format::Svg).unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.contains("loss curves") && svg.contains("viewBox=\"0 0 800 600\""));
        let fit = String::from_utf8(fit_plot(&[(1.0, 2.0)], [0.0; 2], [1.0, 1.0], Format::Svg).unwrap());
        assert!(fit.unwrap().contains("fit (1.000, 1.000)"));
    }

    #[test]
    fn log_axes_skip_zero_nan_and_negative_values() {
        let points = vec![(0.0, 0.0), (1.0, f64::NAN), (2.0, 0.5), (3.0, -1.0), (4.0, 0.1), (5.0, 0.01)];
        let mut chart = chart(true, points);
        chart.log_x = true;
        chart.marker = Some(("suggested lr".into(), 3.0));
        let (width, height, pixels) = decode_png(&line_chart(&chart, Format::Png).unwrap());
        assert_eq!((width, height), (WIDTH, HEIGHT));
        assert!(count(&pixels, COLOURS[0]) > 100, "the series is drawn");
        assert!(line_chart(&chart, Format::Svg).is_ok());
    }

    #[test]
    fn huge_values_are_skipped_rather_than_hanging_plotters() {
        let points = vec![(1e-300, 1e-300), (1.0, 1.0), (1e300, -1e300), (2.0, 1e300)];
        for (log_x, log_y) in [(false, false), (true, true)] {
            assert!(line_chart(&LineChart { log_x, ..chart(log_y, points.clone()) }, Format::Png).is_ok());
        }
        assert!(animation(&points, &[([1e300, 0.0], 1e300), ([f64::NAN, 1.0], f64::NAN)], 20).is_ok());
    }

    #[test]
    fn empty_chart_still_has_axes_and_title() {
        let mut empty = chart(true, vec![(1.0, f64::NAN)]);
        empty.series.push(Series { name: "valid".into(), points: Vec::new() });
        let (_, _, pixels) = decode_png(&line_chart(&empty, Format::Png).unwrap());
        assert!(non_white(&pixels) > 2_000);
        empty.series.clear();
        assert!(line_chart(&empty, Format::Png).is_ok());
    }

    #[test]
    fn image_grid_of_16_digits_is_800x600_with_both_caption_colours() {
        let digit = |k: usize| (0..64).map(|i| if (i + k).is_multiple_of(3) { 1.0 } else { 0.0 }).collect();
        let images: Vec<GridImage> = (0..16)
            .map(|k| GridImage {
                pixels: digit(k),
                colour: false,
                side: 8,
                caption: format!("{k} / 3"),
                wrong: k % 4 == 0,
            })
            .collect();
        let (width, height, pixels) = decode_png(&image_grid(&images, 4, "results", Format::Png).unwrap());
        assert_eq!((width, height), (WIDTH, HEIGHT));
        assert!(count(&pixels, BLACK) > 16 * 20 * 100, "ink: {}", count(&pixels, BLACK));
        assert!(count(&pixels, WRONG_RED) > 0 && count(&pixels, RIGHT_GREEN) > 0);
        let svg = image_grid(&images, 4, "results", Format::Svg).unwrap();
        assert!(String::from_utf8(svg).unwrap().contains("results"));
    }

    #[test]
    fn image_grid_rejects_a_wrong_pixel_count() {
        let image = GridImage {
            pixels: vec![0.5; 10],
            colour: false,
            side: 4,
            caption: "1 / 1".into(),
            wrong: false,
        };
        let error = image_grid(&[image], 4, "results", Format::Png).unwrap_err();
        assert!(error.to_string().contains("image 0 has 10 values, not 16"), "{error}");
    }

    #[test]
    fn animation_has_one_frame_per_step() {
        let frames: Vec<([f64; 2], f64)> =
            (0..100).map(|k| ([3.0 * f64::from(k) / 99.0, 2.0], 1.0 / f64::from(k + 1))).collect();
        let gif_bytes = animation(&line_points_sample(), &frames, 20).unwrap();
        let mut options = gif::DecodeOptions::new();
        options.set_color_output(gif::ColorOutput::RGBA);
        let mut decoder = options.read_info(Cursor::new(gif_bytes)).unwrap();
        assert_eq!((decoder.width(), decoder.height()), (480, 360));
        assert_eq!(decoder.repeat(), gif::Repeat::Infinite);
        let (mut count, mut canvas) = (0, vec![0; 480 * 360 * 4]);
        while let Some(frame) = decoder.read_next_frame().unwrap() {
            assert_eq!((frame.width, frame.height, frame.delay), (480, 360, 2));
            for (pixel, new) in canvas.chunks_exact_mut(4).zip(frame.buffer.chunks_exact(4)) {
                if new[3] != 0 {
                    pixel.copy_from_slice(new);
                }
            }
            let orange = canvas.chunks_exact(4).filter(|p| p[0] > 200 && p[1] < 170 && p[2] < 80);
            assert!(orange.count() > 1000, "frame {count} shows the data");
            let blue = canvas.chunks_exact(4).filter(|p| p[..3] == [DATA_BLUE.0, DATA_BLUE.1, DATA_BLUE.2]);
            assert!(blue.count() > 500, "frame {count} shows the line");
            count += 1;
        }
        assert_eq!(count, 100);
        assert!(animation(&[], &[], 20).is_ok());
    }

    #[test]
    fn ranges_and_tick_labels() {
        assert_eq!(padded_range([1.0, 3.0, f64::NAN].into_iter(), false), 0.9..3.1);
        let log = padded_range([0.0, 0.01, 100.0].into_iter(), true);
        assert!((log.start - 10f64.powf(-2.2)).abs() < 1e-12 && (log.end - 10f64.powf(2.2)).abs() < 1e-9);
        assert_eq!(padded_range(std::iter::empty(), false), 0.0..1.0);
        assert_eq!(padded_range([-1.0].into_iter(), true), 1.0..10.0);
        let labels: Vec<String> =
            [0.0, -2.2e-16, 0.25, 2.0000000000000004e-5, 1500.0, 1e6, -3.5].iter().map(tick_label).collect();
        assert_eq!(labels, ["0", "0", "0.25", "2e-5", "1500", "1e6", "-3.5"]);
    }
}
