//! Labelled multichannel sequences (time series classification), read from
//! UEA/UCR time-series files (`.ts`, the sktime format): multichannel, equal
//! or unequal lengths, class labels.
//!
//! ```text
//! # comment lines start with '#'
//! @problemName BasicMotions
//! @timeStamps false
//! @missing false
//! @univariate false
//! @dimensions 6
//! @equalLength true
//! @seriesLength 100
//! @classLabel true Standing Running Walking Badminton
//! @data
//! 0.1,0.2,...:0.3,0.1,...:...:Standing
//! ```
//!
//! One series per data line: channels separated by `:`, values by `,`, the
//! class label last. Every channel of a series has the same length; series may
//! differ in length unless `@equalLength true`. Errors name the file and the
//! 1-based line: a wrong channel count, a non-numeric value, an unknown label,
//! channels of different lengths, a length other than `@seriesLength`.
//! Timestamps and missing values (`?`) are not supported and are rejected.

use std::path::{Path, PathBuf};

use super::table::Dataset;

/// Labelled multichannel series, each stored time-major (`steps x channels`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sequences {
    /// Series `i` holds `steps(i) * channels` values: step 0's channels, then step 1's...
    pub series: Vec<Vec<f32>>,
    /// Class id of each series.
    pub labels: Vec<usize>,
    /// Channels per time step.
    pub channels: usize,
    /// Class names in `@classLabel` order; the index is the class id.
    pub class_names: Vec<String>,
}

impl Sequences {
    /// Number of series.
    pub fn len(&self) -> usize {
        self.series.len()
    }
    /// True when there are no series.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
    /// Time steps of series `i`.
    pub fn steps(&self, i: usize) -> usize {
        self.series[i].len() / self.channels.max(1)
    }
    /// Number of classes.
    pub fn class_count(&self) -> usize {
        self.class_names.len()
    }

    /// Every `k` consecutive time steps as one step of `k * channels`
    /// values (a patch), so a recurrent model takes `steps / k` steps: the
    /// same values in the same order, a trailing part shorter than `k`
    /// dropped. `k = 1` is the identity; a series shorter than `k` steps is
    /// an error naming it (0-based, in file order).
    pub fn patched(&self, k: usize) -> anyhow::Result<Sequences> {
        if k <= 1 {
            return Ok(self.clone());
        }
        let width = k * self.channels;
        let mut series = Vec::with_capacity(self.len());
        for (i, s) in self.series.iter().enumerate() {
            if self.steps(i) < k {
                anyhow::bail!(
                    "series {i} has {} time steps, fewer than one patch of {k}",
                    self.steps(i)
                );
            }
            series.push(s[..s.len() / width * width].to_vec());
        }
        Ok(Sequences {
            series,
            labels: self.labels.clone(),
            channels: width,
            class_names: self.class_names.clone(),
        })
    }

    /// Every series padded or cropped to the same number of time steps;
    /// the error names the first series (0-based, in file order) that
    /// cannot be.
    pub fn resized(&self, resize: super::Resize) -> anyhow::Result<Sequences> {
        let series = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                resize
                    .apply(s, self.channels, "time steps")
                    .map_err(|problem| anyhow::anyhow!("series {i} has {problem}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Sequences {
            series,
            ..self.clone()
        })
    }

    /// Sequences of equal length as rows of `steps x channels` values
    /// (time-major), for models that read a whole sequence as one input.
    pub fn to_rows(&self) -> anyhow::Result<Dataset> {
        let len = self.series.first().map_or(0, Vec::len);
        if self.series.iter().any(|s| s.len() != len) {
            anyhow::bail!("the series differ in length, and this model reads inputs of one length");
        }
        Ok(Dataset {
            features: self.series.concat(),
            labels: self.labels.clone(),
            feature_count: len,
            class_names: self.class_names.clone(),
        })
    }
}

/// Why a `.ts` file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum SequencesError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Bad content on a line.
    #[error("{}: line {line}: {message}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Something missing from the file as a whole.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Read and parse a `.ts` file.
pub fn load(path: &Path) -> Result<Sequences, SequencesError> {
    let text = std::fs::read_to_string(path).map_err(|source| SequencesError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parse `.ts` text; `path` names the file in errors.
pub fn parse(text: &str, path: &Path) -> Result<Sequences, SequencesError> {
    let err = |line: usize, message: String| SequencesError::Line {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut class_names: Option<Vec<String>> = None;
    let mut dimensions: Option<usize> = None;
    let mut equal_length = false;
    let mut series_length: Option<usize> = None;
    let mut in_data = false;
    let mut set = Sequences {
        series: Vec::new(),
        labels: Vec::new(),
        channels: 0,
        class_names: Vec::new(),
    };
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !in_data {
            let Some(header) = line.strip_prefix('@') else {
                return Err(err(line_no, "data before the @data line".into()));
            };
            let mut words = header.split_whitespace();
            let key = words.next().unwrap_or("").to_ascii_lowercase();
            let args: Vec<&str> = words.collect();
            let flag = |args: &[&str]| -> Result<bool, SequencesError> {
                match args.first().map(|a| a.to_ascii_lowercase()).as_deref() {
                    Some("true") => Ok(true),
                    Some("false") => Ok(false),
                    _ => Err(err(line_no, format!("@{key} needs true or false"))),
                }
            };
            let number = |args: &[&str]| -> Result<usize, SequencesError> {
                match args.first().and_then(|a| a.parse::<usize>().ok()) {
                    Some(n) if n > 0 => Ok(n),
                    _ => Err(err(line_no, format!("@{key} needs a positive integer"))),
                }
            };
            match key.as_str() {
                "classlabel" => {
                    if !flag(&args)? {
                        return Err(err(
                            line_no,
                            "@classLabel false: only classification files are supported".into(),
                        ));
                    }
                    let names: Vec<String> = args[1..].iter().map(|s| s.to_string()).collect();
                    if names.is_empty() {
                        return Err(err(line_no, "@classLabel true lists no classes".into()));
                    }
                    class_names = Some(names);
                }
                "dimensions" => dimensions = Some(number(&args)?),
                "equallength" => equal_length = flag(&args)?,
                "serieslength" => series_length = Some(number(&args)?),
                "timestamps" if flag(&args)? => {
                    return Err(err(line_no, "@timeStamps true is not supported".into()));
                }
                "timestamps" => {}
                "missing" | "univariate" => {
                    flag(&args)?;
                }
                "data" => {
                    let Some(names) = class_names.clone() else {
                        return Err(err(line_no, "@data before @classLabel".into()));
                    };
                    set.class_names = names;
                    in_data = true;
                }
                _ => {} // @problemName and others are informational
            }
            continue;
        }
        let parts: Vec<&str> = line.split(':').collect();
        let (label, channels) = parts.split_last().unwrap_or((&"", &[]));
        let expected = dimensions.unwrap_or(if set.channels > 0 {
            set.channels
        } else {
            channels.len()
        });
        if channels.len() != expected || expected == 0 {
            return Err(err(
                line_no,
                format!("{} channels, expected {expected}", channels.len()),
            ));
        }
        set.channels = expected;
        let label = label.trim();
        let Some(class) = set.class_names.iter().position(|c| c == label) else {
            return Err(err(
                line_no,
                format!(
                    "unknown label {label:?} (known: {})",
                    set.class_names.join(", ")
                ),
            ));
        };
        let mut columns: Vec<Vec<f32>> = Vec::with_capacity(expected);
        for (c, text) in channels.iter().enumerate() {
            let values = text
                .split(',')
                .enumerate()
                .map(|(i, v)| {
                    let v = v.trim();
                    match v.parse::<f32>() {
                        Ok(x) if x.is_finite() => Ok(x),
                        _ => Err(err(
                            line_no,
                            format!("channel {} value {}: {v:?} is not a number", c + 1, i + 1),
                        )),
                    }
                })
                .collect::<Result<Vec<f32>, SequencesError>>()?;
            if let Some(first) = columns.first() {
                if first.len() != values.len() {
                    return Err(err(
                        line_no,
                        format!(
                            "channel {} has {} values, channel 1 has {}",
                            c + 1,
                            values.len(),
                            first.len()
                        ),
                    ));
                }
            }
            columns.push(values);
        }
        let steps = columns.first().map_or(0, Vec::len);
        if equal_length {
            if let Some(n) = series_length {
                if steps != n {
                    return Err(err(
                        line_no,
                        format!("{steps} steps, @seriesLength says {n}"),
                    ));
                }
            }
        }
        let mut series = Vec::with_capacity(steps * expected);
        for t in 0..steps {
            for column in &columns {
                series.push(column[t]);
            }
        }
        set.series.push(series);
        set.labels.push(class);
    }
    if !in_data {
        return Err(SequencesError::File {
            path: path.to_path_buf(),
            message: "no @data line".into(),
        });
    }
    if set.is_empty() {
        return Err(SequencesError::File {
            path: path.to_path_buf(),
            message: "no series after @data".into(),
        });
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "# test\n@problemName T\n@dimensions 2\n@equalLength false\n@classLabel true a b\n@data\n";

    fn parse_body(body: &str) -> Result<Sequences, SequencesError> {
        parse(&format!("{HEADER}{body}"), Path::new("t.ts"))
    }

    #[test]
    fn unequal_lengths_multichannel() {
        let set = parse_body("1,2,3:4,5,6:a\n7,8:9,10:b\n").unwrap();
        assert_eq!(set.channels, 2);
        assert_eq!(set.len(), 2);
        assert_eq!(set.steps(0), 3);
        assert_eq!(set.steps(1), 2);
        assert_eq!(set.series[0], vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert_eq!(set.labels, vec![0, 1]);
    }

    fn message(body: &str) -> String {
        parse_body(body).unwrap_err().to_string()
    }

    #[test]
    fn wrong_channel_count_names_the_line() {
        let m = message("1,2:3,4:a\n1,2:b\n");
        assert!(
            m.contains("line 8") && m.contains("1 channels, expected 2"),
            "{m}"
        );
    }

    #[test]
    fn non_numeric_value_names_the_line() {
        let m = message("1,2:3,x:a\n");
        assert!(
            m.contains("line 7") && m.contains("\"x\" is not a number"),
            "{m}"
        );
        let m = message("1,2:3,?:a\n");
        assert!(m.contains("line 7") && m.contains("not a number"), "{m}");
    }

    #[test]
    fn unknown_label_names_the_line() {
        let m = message("1,2:3,4:a\n1,2:3,4:c\n");
        assert!(
            m.contains("line 8") && m.contains("unknown label \"c\""),
            "{m}"
        );
    }

    #[test]
    fn other_malformed_input() {
        assert!(message("1,2:3:a\n").contains("channel 2 has 1 values"));
        let text =
            "@dimensions 1\n@equalLength true\n@seriesLength 3\n@classLabel true a\n@data\n1,2:a\n";
        let m = parse(text, Path::new("t.ts")).unwrap_err().to_string();
        assert!(
            m.contains("line 6") && m.contains("@seriesLength says 3"),
            "{m}"
        );
        assert!(parse("@classLabel true a\n", Path::new("t.ts")).is_err());
        assert!(parse("@data\n1:a\n", Path::new("t.ts")).is_err());
    }

    #[test]
    fn basic_motions_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/datasets/basic-motions");
        let set = load(&dir.join("BasicMotions_TRAIN.ts")).unwrap();
        assert_eq!(
            (set.len(), set.channels, set.steps(0), set.class_count()),
            (40, 6, 100, 4)
        );
    }
}
