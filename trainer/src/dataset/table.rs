//! Labelled rows (tabular classification data): load a CSV, split it.
//!
//! ## Contract
//! - [`load_csv`] reads `.csv` or gzip-compressed CSV (detected by the gzip
//!   magic bytes, so `.csv.gz` works whatever the name), after skipping
//!   `skip_rows` lines, with cells split at `delimiter` ([`CsvOptions`]).
//!   Every row must have the same number of columns; one of them is the
//!   label, all others are features and must be finite numbers. Cells are
//!   trimmed of surrounding whitespace; blank lines are skipped. When only
//!   the first row read has another column count, the error says so and
//!   suggests `skip_rows` (a CSV as scikit-learn ships it starts with a line
//!   of counts).
//! - Labels are text. The distinct label values, sorted (numerically when all
//!   of them parse as numbers, else lexically), become class ids `0..n`, and
//!   [`Dataset::class_names`] keeps their text, so `"10"` sorts after `"9"`.
//! - Every problem is a [`DataError`] whose message is one line naming the
//!   file and, for row problems, the 1-based line of the file (and the 1-based
//!   column for cell problems), as an editor shows them. Loading never panics.
//! - [`split_stratified`] is deterministic for a seed and splits each class
//!   separately.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A labelled classification dataset held in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Row-major features, `len() * feature_count` values.
    pub features: Vec<f32>,
    /// Class id of each row, each below `class_names.len()`.
    pub labels: Vec<usize>,
    /// Features per row.
    pub feature_count: usize,
    /// Label text of each class; the index is the class id.
    pub class_names: Vec<String>,
}

impl Dataset {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Features of row `i`. Panics if `i >= len()` (a caller bug, like slice indexing).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.features[i * self.feature_count..(i + 1) * self.feature_count]
    }

    /// Number of classes, including any with no rows in this (sub)set.
    pub fn class_count(&self) -> usize {
        self.class_names.len()
    }

    /// The given rows, in the given order. The class list is kept whole so
    /// class ids mean the same thing in every subset. Panics on an index out
    /// of range (a caller bug).
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut features = Vec::with_capacity(indices.len() * self.feature_count);
        for &i in indices {
            features.extend_from_slice(self.row(i));
        }
        Dataset {
            features,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            feature_count: self.feature_count,
            class_names: self.class_names.clone(),
        }
    }
}

impl Dataset {
    /// Every row padded (repeating its last feature) or cropped to the
    /// same number of features.
    pub fn resized(&self, resize: super::Resize) -> anyhow::Result<Dataset> {
        let n = resize.length();
        let mut features = Vec::with_capacity(self.len() * n);
        for i in 0..self.len() {
            let row = resize
                .apply(self.row(i), 1, "features")
                .map_err(|problem| anyhow::anyhow!("rows have {problem}"))?;
            features.extend(row);
        }
        Ok(Dataset {
            features,
            feature_count: n,
            ..self.clone()
        })
    }
}

/// Which CSV column holds the label. In a spec: `"last"`, `"first"`, a
/// 0-based column index (`0` is the first column), or a header name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LabelColumn {
    /// The last column (the default).
    #[default]
    Last,
    /// The first column.
    First,
    /// A 0-based column index.
    Index(usize),
    /// The column with this header name; requires a header row.
    Name(String),
}

impl fmt::Display for LabelColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelColumn::Last => f.write_str("last"),
            LabelColumn::First => f.write_str("first"),
            LabelColumn::Index(i) => write!(f, "{i}"),
            LabelColumn::Name(name) => write!(f, "{name:?}"),
        }
    }
}

impl Serialize for LabelColumn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            LabelColumn::Last => s.serialize_str("last"),
            LabelColumn::First => s.serialize_str("first"),
            LabelColumn::Index(i) => s.serialize_u64(*i as u64),
            LabelColumn::Name(name) => s.serialize_str(name),
        }
    }
}

impl<'de> Deserialize<'de> for LabelColumn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LabelColumnVisitor;

        impl serde::de::Visitor<'_> for LabelColumnVisitor {
            type Value = LabelColumn;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#""last", "first", a 0-based column index or a column name"#)
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LabelColumn, E> {
                Ok(match v {
                    "last" => LabelColumn::Last,
                    "first" => LabelColumn::First,
                    "" => return Err(E::custom("label column name is empty")),
                    name => LabelColumn::Name(name.to_string()),
                })
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<LabelColumn, E> {
                usize::try_from(v)
                    .map(LabelColumn::Index)
                    .map_err(|_| E::custom(format!("label column index {v} is too large")))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<LabelColumn, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!(
                        "label column index {v} is negative (indices are 0-based)"
                    ))),
                }
            }
        }

        d.deserialize_any(LabelColumnVisitor)
    }
}

/// How to read a CSV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// Which column is the label.
    pub label_column: LabelColumn,
    /// Whether the first row read is a header. `None` auto-detects: it is a
    /// header when one of its feature cells is not a number (or when the
    /// label column is chosen by name).
    pub header: Option<bool>,
    /// Lines at the top of the file not read at all (before any header).
    pub skip_rows: usize,
    /// The byte between cells (`b','`, `b';'`, `b'\t'`, ...).
    pub delimiter: u8,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            label_column: LabelColumn::default(),
            header: None,
            skip_rows: 0,
            delimiter: b',',
        }
    }
}

/// Why a dataset could not be loaded. Each message is a single line.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file does not exist.
    #[error("dataset not found: {}", path.display())]
    NotFound { path: PathBuf },
    /// Any other I/O failure, including a corrupt gzip stream.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The CSV parser rejected the file (for example invalid UTF-8).
    #[error("{}: line {line}: {message}", path.display())]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },
    /// No data rows (an empty file, or only a header).
    #[error("{}: dataset has no data rows", path.display())]
    Empty { path: PathBuf },
    /// A row needs at least one feature column besides the label.
    #[error("{}: line {line}: found {columns} column(s); need at least one feature column and a label column", path.display())]
    TooFewColumns {
        path: PathBuf,
        line: u64,
        columns: usize,
    },
    /// The first row read has a different column count than the rows after
    /// it: likely not data (scikit-learn's CSVs start with a line of counts).
    #[error("{}: line {line} has {columns} columns but the rows after it have {rest}: if line {line} is not data (scikit-learn's CSVs start with a line of counts such as `178,13,class_0,...`), set skip_rows = {line} in [dataset]", path.display())]
    FirstRowDiffers {
        path: PathBuf,
        line: u64,
        columns: usize,
        rest: usize,
    },
    /// A row's column count differs from the first row's.
    #[error("{}: line {line}: expected {expected} columns, found {found}", path.display())]
    RaggedRow {
        path: PathBuf,
        line: u64,
        expected: usize,
        found: usize,
    },
    /// A feature cell is not a number.
    #[error("{}: line {line}, column {column}: {text:?} is not a number", path.display())]
    NotANumber {
        path: PathBuf,
        line: u64,
        column: usize,
        text: String,
    },
    /// A feature cell is empty.
    #[error("{}: line {line}, column {column}: empty cell (missing value)", path.display())]
    EmptyCell {
        path: PathBuf,
        line: u64,
        column: usize,
    },
    /// A feature cell is NaN or infinite (or overflows f32).
    #[error("{}: line {line}, column {column}: {text:?} is not a finite number", path.display())]
    NonFinite {
        path: PathBuf,
        line: u64,
        column: usize,
        text: String,
    },
    /// The label cell is empty.
    #[error("{}: line {line}: missing label (column {column} is empty)", path.display())]
    MissingLabel {
        path: PathBuf,
        line: u64,
        column: usize,
    },
    /// The label column index is not in the file.
    #[error("{}: label column {index} is out of range: rows have {columns} columns (indices 0..={})", path.display(), columns - 1)]
    LabelColumnOutOfRange {
        path: PathBuf,
        index: usize,
        columns: usize,
    },
    /// The label column name is not in the header.
    #[error("{}: no column named {name:?} in the header (columns: {})", path.display(), columns.join(", "))]
    UnknownColumn {
        path: PathBuf,
        name: String,
        columns: Vec<String>,
    },
    /// The label column was chosen by name but the file has no header.
    #[error("{}: label column {name:?} is chosen by name, but header = false", path.display())]
    NameWithoutHeader { path: PathBuf, name: String },
}

/// Load a labelled CSV (or gzip-compressed CSV) file. See the module docs
/// for the format and the errors.
pub fn load_csv(path: &Path, options: &CsvOptions) -> Result<Dataset, DataError> {
    let text = read_maybe_gzip(path)?;
    // The csv crate's own line counter skips blank lines, so line numbers
    // come from the record's byte offset instead (in the whole file, so
    // they stay the file's lines after skip_rows).
    let line_starts = LineIndex::new(&text);
    let start = line_starts.start_of_line(options.skip_rows);
    let mut csv_reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(options.delimiter)
        // Ragged rows are checked here, to report them with our own message.
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(&text[start..]);
    let line_of = |position: Option<&csv::Position>| {
        position.map_or(0, |p| line_starts.line_of(start as u64 + p.byte()))
    };

    let mut label_index: Option<usize> = None;
    let mut column_count = 0;
    let mut features = Vec::new();
    let mut label_texts: Vec<String> = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut first_row = true;
    let mut first_line = 0;
    let mut rows_read = 0usize;

    loop {
        match csv_reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(path, &line_starts, start, e)),
        }
        rows_read += 1;
        let line = line_of(record.position());

        if first_row {
            first_row = false;
            first_line = line;
            column_count = record.len();
            if column_count < 2 {
                return Err(DataError::TooFewColumns {
                    path: path.to_path_buf(),
                    line,
                    columns: column_count,
                });
            }
            let (index, is_header) = resolve_label_column(path, options, &record)?;
            label_index = Some(index);
            if is_header {
                continue;
            }
        }
        let label_index = label_index.expect("set on the first row");

        if record.len() != column_count {
            // The second row disagreeing with the first, and the third (if
            // any) agreeing with the second: the first line is the odd one.
            let mut next = csv::StringRecord::new();
            if rows_read == 2
                && match csv_reader.read_record(&mut next) {
                    Ok(more) => !more || next.len() == record.len(),
                    Err(_) => true,
                }
            {
                return Err(DataError::FirstRowDiffers {
                    path: path.to_path_buf(),
                    line: first_line,
                    columns: column_count,
                    rest: record.len(),
                });
            }
            return Err(DataError::RaggedRow {
                path: path.to_path_buf(),
                line,
                expected: column_count,
                found: record.len(),
            });
        }
        for (column, cell) in record.iter().enumerate() {
            if column == label_index {
                if cell.is_empty() {
                    return Err(DataError::MissingLabel {
                        path: path.to_path_buf(),
                        line,
                        column: column + 1,
                    });
                }
                label_texts.push(cell.to_string());
            } else {
                features.push(parse_feature(path, line, column + 1, cell)?);
            }
        }
    }

    if label_texts.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    let (labels, class_names) = assign_class_ids(&label_texts);
    Ok(Dataset {
        features,
        labels,
        feature_count: column_count - 1,
        class_names,
    })
}

/// Read all of `path`, decompressing it when it starts with the gzip magic
/// bytes. Datasets that fit a microcontroller model fit in desktop memory.
fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, DataError> {
    let io_error = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            DataError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let raw = std::fs::read(path).map_err(io_error)?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(raw.as_slice())
        .read_to_end(&mut text)
        .map_err(io_error)?;
    Ok(text)
}

/// Byte offset to 1-based line number.
struct LineIndex<'a> {
    text: &'a [u8],
    /// Byte offset of every `\n`.
    newlines: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a [u8]) -> Self {
        let newlines = text
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .map(|(i, _)| i)
            .collect();
        LineIndex { text, newlines }
    }

    /// Byte offset where line `skipped + 1` starts (the file's end if it
    /// has fewer lines).
    fn start_of_line(&self, skipped: usize) -> usize {
        match skipped.checked_sub(1) {
            None => 0,
            Some(i) => self.newlines.get(i).map_or(self.text.len(), |&n| n + 1),
        }
    }

    /// Line of the record that the csv crate says starts at `byte`. That
    /// offset can point at blank lines the reader then skipped, so step over
    /// line breaks first.
    fn line_of(&self, byte: u64) -> u64 {
        let mut start = usize::try_from(byte)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        while start < self.text.len() && matches!(self.text[start], b'\n' | b'\r') {
            start += 1;
        }
        self.newlines.partition_point(|&n| n < start) as u64 + 1
    }
}

fn csv_error(path: &Path, lines: &LineIndex, start: usize, error: csv::Error) -> DataError {
    let line = error
        .position()
        .map_or(0, |p| lines.line_of(start as u64 + p.byte()));
    match error.into_kind() {
        csv::ErrorKind::Io(source) => DataError::Io {
            path: path.to_path_buf(),
            source,
        },
        kind => {
            let message = match kind {
                csv::ErrorKind::Utf8 { err, .. } => {
                    format!("invalid UTF-8 in column {}", err.field() + 1)
                }
                other => format!("{:?}", other),
            };
            DataError::Csv {
                path: path.to_path_buf(),
                line,
                message,
            }
        }
    }
}

/// Find the label column's index from the first row, and decide whether
/// that row is a header.
fn resolve_label_column(
    path: &Path,
    options: &CsvOptions,
    first_row: &csv::StringRecord,
) -> Result<(usize, bool), DataError> {
    let columns = first_row.len();
    let index = match &options.label_column {
        LabelColumn::Last => columns - 1,
        LabelColumn::First => 0,
        LabelColumn::Index(i) if *i < columns => *i,
        LabelColumn::Index(i) => {
            return Err(DataError::LabelColumnOutOfRange {
                path: path.to_path_buf(),
                index: *i,
                columns,
            });
        }
        LabelColumn::Name(name) => {
            if options.header == Some(false) {
                return Err(DataError::NameWithoutHeader {
                    path: path.to_path_buf(),
                    name: name.clone(),
                });
            }
            return match first_row.iter().position(|cell| cell == name) {
                Some(i) => Ok((i, true)),
                None => Err(DataError::UnknownColumn {
                    path: path.to_path_buf(),
                    name: name.clone(),
                    columns: first_row.iter().map(str::to_string).collect(),
                }),
            };
        }
    };
    let is_header = options.header.unwrap_or_else(|| {
        // Only feature cells decide: a data row may well have a text label.
        first_row
            .iter()
            .enumerate()
            .any(|(i, cell)| i != index && cell.parse::<f32>().is_err())
    });
    Ok((index, is_header))
}

fn parse_feature(path: &Path, line: u64, column: usize, cell: &str) -> Result<f32, DataError> {
    if cell.is_empty() {
        return Err(DataError::EmptyCell {
            path: path.to_path_buf(),
            line,
            column,
        });
    }
    match cell.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(DataError::NonFinite {
            path: path.to_path_buf(),
            line,
            column,
            text: cell.to_string(),
        }),
        Err(_) => Err(DataError::NotANumber {
            path: path.to_path_buf(),
            line,
            column,
            text: cell.to_string(),
        }),
    }
}

/// Map label texts to class ids: distinct values sorted numerically when
/// all are numbers (so "10" comes after "9"), else lexically.
fn assign_class_ids(label_texts: &[String]) -> (Vec<usize>, Vec<String>) {
    let mut class_names: Vec<String> = label_texts.to_vec();
    class_names.sort();
    class_names.dedup();
    let numeric: Option<Vec<f64>> = class_names.iter().map(|s| s.parse::<f64>().ok()).collect();
    if let Some(values) = numeric {
        let mut pairs: Vec<(f64, String)> = values.into_iter().zip(class_names).collect();
        // Ties ("1" vs "1.0") fall back to the text, keeping the order total.
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        class_names = pairs.into_iter().map(|(_, name)| name).collect();
    }
    let id_of: std::collections::HashMap<&str, usize> = class_names
        .iter()
        .enumerate()
        .map(|(id, name)| (name.as_str(), id))
        .collect();
    let labels = label_texts
        .iter()
        .map(|text| id_of[text.as_str()])
        .collect();
    (labels, class_names)
}

/// Split into `(train, test)`, each class separately so both sets keep the
/// class proportions.
///
/// Per class, `round(n * test_fraction)` rows (chosen by a ChaCha8 RNG seeded
/// with `seed`) go to test, but at least one row of each class stays in train.
/// `test_fraction` is clamped to `[0, 1]`. Both sets keep the rows in file
/// order, so the result depends only on the data and the seed.
pub fn split_stratified(data: &Dataset, test_fraction: f64, seed: u64) -> (Dataset, Dataset) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let in_test = stratified_holdout(&data.labels, test_fraction, &mut rng);
    let (test_rows, train_rows): (Vec<usize>, Vec<usize>) =
        (0..data.len()).partition(|&row| in_test[row]);
    (data.subset(&train_rows), data.subset(&test_rows))
}

/// Which examples to hold out, class by class: of each class's `n`
/// examples (`labels[i]` is example `i`'s class), `round(n * fraction)`
/// drawn with `rng`, but at least one stays in. `fraction` is clamped to
/// `[0, 1]` (NaN is 0). The draws depend only on the labels and the
/// generator: [`split_stratified`] for the test split, the training loop
/// for its validation split.
pub fn stratified_holdout(labels: &[usize], fraction: f64, rng: &mut ChaCha8Rng) -> Vec<bool> {
    let fraction = if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    };
    let classes = labels.iter().max().map_or(0, |&m| m + 1);
    let mut rows_of_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (row, &label) in labels.iter().enumerate() {
        rows_of_class[label].push(row);
    }
    let mut held = vec![false; labels.len()];
    for mut rows in rows_of_class {
        let count =
            ((rows.len() as f64 * fraction).round() as usize).min(rows.len().saturating_sub(1));
        rows.shuffle(rng);
        for &row in &rows[..count] {
            held[row] = true;
        }
    }
    held
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn repo_path(relative: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(relative)
    }

    fn temp_csv(contents: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        file
    }

    fn load_text(contents: &str, options: &CsvOptions) -> Result<Dataset, DataError> {
        let file = temp_csv(contents);
        load_csv(file.path(), options)
    }

    #[test]
    fn digits_loads_from_gzip() {
        let data = load_csv(
            &repo_path("models/datasets/digits/digits.csv.gz"),
            &CsvOptions::default(),
        )
        .unwrap();
        assert_eq!(data.len(), 1797);
        assert_eq!(data.feature_count, 64);
        assert_eq!(data.class_count(), 10);
        assert_eq!(
            data.class_names,
            (0..10).map(|d| d.to_string()).collect::<Vec<_>>()
        );
        assert_eq!(data.features.len(), 1797 * 64);
        // First row of the file: 0,0,5,13,9,1,... label 0.
        assert_eq!(&data.row(0)[..4], &[0.0, 0.0, 5.0, 13.0]);
        assert_eq!(data.labels[0], 0);
        assert!(data.features.iter().all(|&x| (0.0..=16.0).contains(&x)));
    }

    #[test]
    fn iris_loads_with_detected_header() {
        let data = load_csv(
            &repo_path("models/datasets/iris/iris.csv"),
            &CsvOptions::default(),
        )
        .unwrap();
        assert_eq!(data.len(), 150);
        assert_eq!(data.feature_count, 4);
        assert_eq!(data.class_count(), 3);
        assert_eq!(data.row(0), &[5.1, 3.5, 1.4, 0.2]);
        for class in 0..3 {
            assert_eq!(data.labels.iter().filter(|&&l| l == class).count(), 50);
        }
    }

    #[test]
    fn label_column_by_name_first_and_index() {
        let text = "species,a,b\nsetosa,1,2\nvirginica,3,4\n";
        let by_name = load_text(
            text,
            &CsvOptions {
                label_column: LabelColumn::Name("species".into()),
                header: None,
                ..CsvOptions::default()
            },
        )
        .unwrap();
        let first = load_text(
            text,
            &CsvOptions {
                label_column: LabelColumn::First,
                header: Some(true),
                ..CsvOptions::default()
            },
        )
        .unwrap();
        let index = load_text(
            text,
            &CsvOptions {
                label_column: LabelColumn::Index(0),
                header: None,
                ..CsvOptions::default()
            },
        )
        .unwrap();
        for data in [&by_name, &first, &index] {
            assert_eq!(data.class_names, ["setosa", "virginica"]);
            assert_eq!(data.features, [1.0, 2.0, 3.0, 4.0]);
            assert_eq!(data.labels, [0, 1]);
        }
    }

    #[test]
    fn text_label_does_not_make_a_header() {
        // Feature cells are numeric, so the first row is data despite the text label.
        let data = load_text("1,2,cat\n3,4,dog\n", &CsvOptions::default()).unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data.class_names, ["cat", "dog"]);
    }

    #[test]
    fn numeric_labels_sort_by_value() {
        let data = load_text("1,10\n2,9\n3,-1\n4,9\n", &CsvOptions::default()).unwrap();
        assert_eq!(data.class_names, ["-1", "9", "10"]);
        assert_eq!(data.labels, [2, 1, 0, 1]);
    }

    #[test]
    fn ragged_row_names_its_line() {
        let err = load_text("1,2,0\n3,4,1\n\n5,1\n", &CsvOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::RaggedRow {
                    line: 4,
                    expected: 3,
                    found: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string()
                .ends_with("line 4: expected 3 columns, found 2"),
            "{err}"
        );
    }

    #[test]
    fn non_numeric_cell_names_line_and_column() {
        let err = load_text("a,b,label\n1,2,0\n3,abc,1\n", &CsvOptions::default()).unwrap_err();
        assert!(
            err.to_string()
                .ends_with(r#"line 3, column 2: "abc" is not a number"#),
            "{err}"
        );
        // CRLF endings and blank lines must not shift the count.
        let err = load_text(
            "a,b,label\r\n\r\n1,2,0\r\n3,abc,1\r\n",
            &CsvOptions::default(),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                DataError::NotANumber {
                    line: 4,
                    column: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        let mut file = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
        file.write_all(b"1,2,0\n1,2,\xff\n").unwrap();
        let err = load_csv(file.path(), &CsvOptions::default()).unwrap_err();
        assert!(matches!(err, DataError::Csv { line: 2, .. }), "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }

    #[test]
    fn empty_and_non_finite_cells_are_rejected() {
        let err = load_text("1,2,0\n,2,1\n", &CsvOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::EmptyCell {
                    line: 2,
                    column: 1,
                    ..
                }
            ),
            "{err}"
        );
        let err = load_text("1,2,0\n1,NaN,1\n", &CsvOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::NonFinite {
                    line: 2,
                    column: 2,
                    ..
                }
            ),
            "{err}"
        );
        let err = load_text("1,2,0\n1,1e39,1\n", &CsvOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::NonFinite {
                    line: 2,
                    column: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn missing_label_names_its_line() {
        let err = load_text("1,2,0\n3,4,1\n5,6,\n", &CsvOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::MissingLabel {
                    line: 3,
                    column: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("line 3: missing label"), "{err}");
    }

    #[test]
    fn missing_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.csv");
        let err = load_csv(&path, &CsvOptions::default()).unwrap_err();
        assert!(matches!(err, DataError::NotFound { .. }));
        assert_eq!(
            err.to_string(),
            format!("dataset not found: {}", path.display())
        );
    }

    #[test]
    fn empty_file_and_header_only_are_empty() {
        let err = load_text("", &CsvOptions::default()).unwrap_err();
        assert!(matches!(err, DataError::Empty { .. }), "{err}");
        let err = load_text("a,b,label\n", &CsvOptions::default()).unwrap_err();
        assert!(matches!(err, DataError::Empty { .. }), "{err}");
    }

    #[test]
    fn label_column_problems() {
        let text = "a,b,label\n1,2,0\n";
        let err = load_text(
            text,
            &CsvOptions {
                label_column: LabelColumn::Index(3),
                header: None,
                ..CsvOptions::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                DataError::LabelColumnOutOfRange {
                    index: 3,
                    columns: 3,
                    ..
                }
            ),
            "{err}"
        );
        let err = load_text(
            text,
            &CsvOptions {
                label_column: LabelColumn::Name("class".into()),
                header: None,
                ..CsvOptions::default()
            },
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains(r#"no column named "class" in the header (columns: a, b, label)"#),
            "{err}"
        );
        let err = load_text("1\n2\n", &CsvOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::TooFewColumns {
                    line: 1,
                    columns: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn gzip_is_detected_by_content() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(b"1,2,0\n3,4,1\n").unwrap();
        let mut file = tempfile::Builder::new()
            .suffix(".csv.gz")
            .tempfile()
            .unwrap();
        file.write_all(&encoder.finish().unwrap()).unwrap();
        let data = load_csv(file.path(), &CsvOptions::default()).unwrap();
        assert_eq!(data.features, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn label_column_deserializes_from_spec_values() {
        #[derive(Deserialize)]
        struct Holder {
            c: LabelColumn,
        }
        let parse = |s: &str| toml::from_str::<Holder>(s).map(|h| h.c);
        assert_eq!(parse("c = \"last\"").unwrap(), LabelColumn::Last);
        assert_eq!(parse("c = \"first\"").unwrap(), LabelColumn::First);
        assert_eq!(parse("c = 2").unwrap(), LabelColumn::Index(2));
        assert_eq!(
            parse("c = \"species\"").unwrap(),
            LabelColumn::Name("species".into())
        );
        assert!(parse("c = -1").is_err());
        assert!(parse("c = 1.5").is_err());
    }

    /// 3 classes of 10, 20 and 30 rows; feature = row index so rows are identifiable.
    fn toy_dataset() -> Dataset {
        let labels: Vec<usize> = (0..60)
            .map(|i| {
                if i < 10 {
                    0
                } else if i < 30 {
                    1
                } else {
                    2
                }
            })
            .collect();
        Dataset {
            features: (0..60).map(|i| i as f32).collect(),
            labels,
            feature_count: 1,
            class_names: vec!["a".into(), "b".into(), "c".into()],
        }
    }

    #[test]
    fn split_is_stratified_disjoint_complete_and_deterministic() {
        let data = toy_dataset();
        let (train, test) = split_stratified(&data, 0.2, 7);
        let count = |d: &Dataset, c: usize| d.labels.iter().filter(|&&l| l == c).count();
        assert_eq!(
            [count(&test, 0), count(&test, 1), count(&test, 2)],
            [2, 4, 6]
        );
        assert_eq!(
            [count(&train, 0), count(&train, 1), count(&train, 2)],
            [8, 16, 24]
        );

        let mut all: Vec<f32> = train
            .features
            .iter()
            .chain(&test.features)
            .copied()
            .collect();
        all.sort_by(f32::total_cmp);
        assert_eq!(
            all, data.features,
            "rows must be disjoint and cover the dataset"
        );
        // Labels travel with their rows.
        for d in [&train, &test] {
            for i in 0..d.len() {
                assert_eq!(d.labels[i], data.labels[d.row(i)[0] as usize]);
            }
            assert!(
                d.features.windows(2).all(|w| w[0] < w[1]),
                "rows keep file order"
            );
        }

        assert_eq!(
            split_stratified(&data, 0.2, 7),
            (train.clone(), test.clone())
        );
        let (_, other_test) = split_stratified(&data, 0.2, 8);
        assert_ne!(
            other_test, test,
            "a different seed should pick different rows"
        );
    }

    #[test]
    fn split_keeps_every_class_in_train() {
        let data = toy_dataset();
        let (train, test) = split_stratified(&data, 1.0, 1);
        assert_eq!(train.len(), 3);
        assert_eq!(test.len(), 57);
    }
}
