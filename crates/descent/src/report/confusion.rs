//! The confusion matrix drawn (fastai's `plot_confusion_matrix`): one row per true class, one
//! column per predicted class, each cell shaded by its share of its row and labelled with its
//! count, the class names along both axes.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::plots::{DrawResult, FONT, Figure, Format, LABEL_SIZE, PlotError, TICK_SIZE, TITLE_SIZE, render};

/// `confusion[true][predicted]` as a figure, the classes named by `names`.
pub fn confusion_figure(
    confusion: &[Vec<usize>],
    names: &[String],
    format: Format,
) -> Result<Vec<u8>, PlotError> {
    if confusion.len() != names.len() || confusion.iter().any(|row| row.len() != names.len()) {
        return Err(PlotError::Draw {
            figure: "confusion matrix".into(),
            message: format!("the matrix is not {0}x{0}, one row and column per class", names.len()),
        });
    }
    render(&ConfusionFigure { confusion, names }, format)
}

struct ConfusionFigure<'a> {
    confusion: &'a [Vec<usize>],
    names: &'a [String],
}

/// A name cut to `chars` characters, with an ellipsis when cut.
fn short(name: &str, chars: usize) -> String {
    if name.chars().count() <= chars {
        return name.to_string();
    }
    let mut cut: String = name.chars().take(chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

impl Figure for ConfusionFigure<'_> {
    fn name(&self) -> String {
        "confusion matrix".into()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (width, height) = root.dim_in_pixel();
        let classes = self.names.len().max(1);
        let title = (FONT, TITLE_SIZE).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new("Confusion matrix", (width as i32 / 2, 8), title))?;
        // Room for the row names on the left and the column names below.
        let (left, top, right, bottom) = (150i32, 44i32, 20i32, 120i32);
        let cell = ((width as i32 - left - right).min(height as i32 - top - bottom) / classes as i32).max(4);
        let grid_width = cell * classes as i32;
        let x0 = left + (width as i32 - left - right - grid_width) / 2;
        let count_size = f64::from(cell as u32).mul_add(0.35, 0.0).clamp(8.0, f64::from(TICK_SIZE));
        let name_size = f64::from(TICK_SIZE).min(f64::from(cell as u32) * 0.8).max(8.0);
        for (actual, row) in self.confusion.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            for (predicted, &count) in row.iter().enumerate() {
                let share = count as f64 / total;
                let shade = (255.0 * (1.0 - 0.85 * share)).round() as u8;
                let (x, y) = (x0 + predicted as i32 * cell, top + actual as i32 * cell);
                let fill = RGBColor(shade, shade, 255);
                root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], fill.filled()))?;
                root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], RGBColor(200, 200, 200)))?;
                let ink = if share > 0.55 { WHITE } else { BLACK };
                let style =
                    (FONT, count_size).into_font().color(&ink).pos(Pos::new(HPos::Center, VPos::Center));
                root.draw(&Text::new(count.to_string(), (x + cell / 2, y + cell / 2), style))?;
            }
        }
        for (class, name) in self.names.iter().enumerate() {
            let row = (FONT, name_size).into_font().color(&BLACK).pos(Pos::new(HPos::Right, VPos::Center));
            let y = top + class as i32 * cell + cell / 2;
            root.draw(&Text::new(short(name, 18), (x0 - 6, y), row))?;
            let column = (FONT, name_size)
                .into_font()
                .transform(FontTransform::Rotate270)
                .color(&BLACK)
                .pos(Pos::new(HPos::Right, VPos::Center));
            let x = x0 + class as i32 * cell + cell / 2;
            root.draw(&Text::new(short(name, 14), (x, top + grid_width + 6), column))?;
        }
        let label = (FONT, LABEL_SIZE).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Bottom));
        root.draw(&Text::new("predicted", (x0 + grid_width / 2, height as i32 - 4), label))?;
        let side_label = (FONT, LABEL_SIZE)
            .into_font()
            .transform(FontTransform::Rotate270)
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new("actual", (6, top + grid_width / 2), side_label))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_draws_and_refuses_a_matrix_of_the_wrong_size() {
        let names: Vec<String> = ["cat", "dog", "a very long class name indeed"].map(String::from).to_vec();
        let confusion = vec![vec![5, 1, 0], vec![2, 7, 1], vec![0, 0, 9]];
        let png = confusion_figure(&confusion, &names, Format::Png).expect("draws");
        assert!(png.starts_with(b"\x89PNG"));
        assert!(confusion_figure(&confusion[..2], &names, Format::Png).is_err());
    }
}
