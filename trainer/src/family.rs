//! The plug-in shape of a model family, and the one pipeline every family
//! goes through.
//!
//! A family (a folder such as `mlp/` or `transformer/`) implements
//! [`Family`]: it parses its own spec tables, loads its data, trains,
//! produces the blob of each numeric path (calibrating and quantizing for
//! int8), evaluates a blob with the runtime, and finishes its report.
//! Everything else is here, the same for all: reading the spec once, the
//! fingerprint and the reuse of an up-to-date export, timing, encoding,
//! writing blobs and test vectors, the atomic swap, `report.json` and the
//! summary line ([`export`], [`evaluate`]).
//!
//! The command line reaches families through [`Plugin`], the object-safe
//! face every [`Family`] has, from the registry in the crate root
//! (`crate::FAMILIES`), where adding a family is one line.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use runtime::Numeric;

use crate::blob::Blob;
use crate::export::write_model;
use crate::io::ExportDir;
use crate::report::{numeric_name, BlobReport, Details, Evaluation, Metric, Report};
use crate::spec::{self, Spec, SpecError, Tables};
use crate::train::History;

/// Both numeric paths, f32 first.
pub const F32_AND_INT8: &[Numeric] = &[Numeric::F32, Numeric::Int8];
/// The f32 path alone.
pub const F32_ONLY: &[Numeric] = &[Numeric::F32];

/// A model family: what differs between, say, an MLP and a transformer.
pub trait Family: Sync {
    /// The spec `kind`s this family reads, e.g. `&["transformer"]`.
    const KINDS: &'static [&'static str];
    /// The family's own part of a spec (its tables, typed and checked).
    type Spec;
    /// The data of one export: training data, test data, calibration data.
    type Data;
    /// A trained (or fitted) f32 model.
    type Model;
    /// What a blob measures on the test data.
    type Metric: Metric;
    /// The family's part of `report.json`.
    type Details: Details;

    /// Parse and check the family's tables (`spec` holds the shared ones),
    /// including every limit of the runtime that the spec alone decides:
    /// this runs before any data is read.
    fn parse(&self, spec: &Spec, tables: &mut Tables) -> Result<Self::Spec, SpecError>;

    /// Files the export depends on besides the spec's data files (a blob
    /// the family reads, say); they enter the export's fingerprint.
    fn inputs(&self, _spec: &Spec<Self::Spec>) -> Vec<PathBuf> {
        Vec::new()
    }

    /// Load the data (checking the widths the data decides).
    fn load(&self, spec: &Spec<Self::Spec>) -> Result<Self::Data>;

    /// Train or fit the model.
    fn train(
        &self,
        spec: &Spec<Self::Spec>,
        data: &Self::Data,
        progress: bool,
    ) -> Result<Trained<Self::Model>>;

    /// The numeric paths exported, f32 first.
    fn numerics(&self, _spec: &Spec<Self::Spec>) -> &'static [Numeric] {
        F32_AND_INT8
    }

    /// The model on one numeric path as layers; int8 calibrates on the
    /// training data and quantizes ([`crate::quantize`]).
    fn blob(
        &self,
        spec: &Spec<Self::Spec>,
        data: &Self::Data,
        model: &Self::Model,
        numeric: Numeric,
    ) -> Result<Blob>;

    /// Run an encoded blob with the runtime over the test data.
    fn evaluate(
        &self,
        spec: &Spec<Self::Spec>,
        data: &Self::Data,
        blob: &[u8],
    ) -> Result<Evaluation<Self::Metric>>;

    /// Files an export has besides blobs, test vectors and the report
    /// (checked before an export is reused).
    fn extra_files(&self, _spec: &Spec<Self::Spec>) -> &'static [&'static str] {
        &[]
    }

    /// After the blobs and vectors are written: the report's details, and
    /// the family's extra files (plots, ...) written into `dir`.
    fn finish(
        &self,
        spec: &Spec<Self::Spec>,
        data: &Self::Data,
        trained: &Trained<Self::Model>,
        runs: &[BlobRun<Self::Metric>],
        dir: &ExportDir,
    ) -> Result<Self::Details>;
}

/// A trained model and its training history (empty when not trained
/// epoch by epoch).
#[derive(Debug, Clone)]
pub struct Trained<M> {
    /// The model.
    pub model: M,
    /// Loss and test score per epoch.
    pub history: History,
}

impl<M> Trained<M> {
    /// A model fitted without epochs.
    pub fn fitted(model: M) -> Self {
        Trained {
            model,
            history: History::default(),
        }
    }
}

/// One exported blob and what it measured.
#[derive(Debug, Clone)]
pub struct BlobRun<M> {
    /// Its numeric path.
    pub numeric: Numeric,
    /// The encoded blob.
    pub blob: Vec<u8>,
    /// Its run over the test data.
    pub evaluation: Evaluation<M>,
}

/// The run of `numeric` among `runs`.
pub fn run_of<M>(runs: &[BlobRun<M>], numeric: Numeric) -> Result<&BlobRun<M>> {
    runs.iter()
        .find(|r| r.numeric == numeric)
        .ok_or_else(|| anyhow::anyhow!("no {} blob", numeric_name(numeric)))
}

/// The metrics of the f32 and the int8 run.
pub fn f32_and_int8<M>(runs: &[BlobRun<M>]) -> Result<(&M, &M)> {
    Ok((
        &run_of(runs, Numeric::F32)?.evaluation.metric,
        &run_of(runs, Numeric::Int8)?.evaluation.metric,
    ))
}

/// Read the spec at `path` as one of `family`'s kinds.
pub fn load<F: Family>(family: &F, path: &Path) -> Result<Spec<F::Spec>> {
    let (spec, tables) = spec::read(path)?;
    own(family, spec, tables)
}

/// Parse spec text as one of `family`'s kinds; `path` names the file in
/// errors and anchors relative paths.
pub fn parse<F: Family>(family: &F, text: &str, path: &Path) -> Result<Spec<F::Spec>> {
    let (spec, tables) = spec::parse(text, path)?;
    own(family, spec, tables)
}

/// The family's part of a spec, parsed from its tables; nothing may be left.
fn own<F: Family>(family: &F, spec: Spec, mut tables: Tables) -> Result<Spec<F::Spec>> {
    if !F::KINDS.contains(&spec.kind.as_str()) {
        return Err(SpecError::UnknownKind {
            path: spec.file,
            kind: spec.kind,
            known: F::KINDS.to_vec(),
        }
        .into());
    }
    let part = family.parse(&spec, &mut tables)?;
    tables.finish()?;
    Ok(spec.with(part))
}

/// Train and export one spec into `out_root/<name>/`, or with `reuse` keep
/// an export that is up to date; the export's report.
pub fn export<F: Family>(
    family: &F,
    spec: &Spec<F::Spec>,
    out_root: &Path,
    reuse: bool,
    progress: bool,
) -> Result<Report<F::Details>> {
    let mut inputs = spec.data_files();
    inputs.extend(family.inputs(spec));
    let fingerprint = crate::export::fingerprint(&spec.file, &inputs)?;
    let numerics = family.numerics(spec);
    let files: Vec<String> = numerics
        .iter()
        .flat_map(|&n| ["bin", "vectors"].map(|e| format!("{}.{e}", numeric_name(n))))
        .chain(family.extra_files(spec).iter().map(|f| f.to_string()))
        .collect();
    write_model(
        out_root,
        &spec.name,
        &fingerprint,
        reuse.then_some(&files[..]),
        |dir| {
            let data = family.load(spec)?;
            let started = Instant::now();
            let trained = family.train(spec, &data, progress)?;
            let training_seconds = started.elapsed().as_secs_f64();
            let mut runs = Vec::new();
            for &numeric in numerics {
                let blob = family
                    .blob(spec, &data, &trained.model, numeric)?
                    .encode()?;
                let evaluation = family.evaluate(spec, &data, &blob)?;
                let name = numeric_name(numeric);
                dir.write(&format!("{name}.bin"), &blob)?;
                dir.write(&format!("{name}.vectors"), &evaluation.vectors)?;
                runs.push(BlobRun {
                    numeric,
                    blob,
                    evaluation,
                });
            }
            let details = family.finish(spec, &data, &trained, &runs, dir)?;
            let figures = |numeric| -> Result<BlobReport> {
                let run = run_of(&runs, numeric)?;
                BlobReport::new(&run.blob, run.evaluation.metric.blob_figure())
            };
            Ok(Report {
                name: spec.name.clone(),
                details,
                f32: figures(Numeric::F32)?,
                int8: match numerics.contains(&Numeric::Int8) {
                    true => Some(figures(Numeric::Int8)?),
                    false => None,
                },
                training_seconds,
                fingerprint: fingerprint.clone(),
            })
        },
    )
}

/// Run `blob` with the runtime over the test data of `spec`, as its export did.
pub fn evaluate<F: Family>(family: &F, spec: &Spec<F::Spec>, blob: &[u8]) -> Result<F::Metric> {
    let data = family.load(spec)?;
    Ok(family.evaluate(spec, &data, blob)?.metric)
}

/// The object-safe face of a [`Family`], for the registry: the commands
/// with a spec whose shared part is parsed.
pub trait Plugin: Sync {
    /// The spec kinds the family reads.
    fn kinds(&self) -> &'static [&'static str];
    /// [`export`] (with progress unless `quiet`); the summary line.
    fn export(
        &self,
        spec: Spec,
        tables: Tables,
        out_root: &Path,
        reuse: bool,
        quiet: bool,
    ) -> Result<String>;
    /// [`evaluate`]; what `eval` prints after the blob's name.
    fn evaluate(&self, spec: Spec, tables: Tables, blob: &[u8]) -> Result<String>;
}

impl<F: Family> Plugin for F {
    fn kinds(&self) -> &'static [&'static str] {
        F::KINDS
    }

    fn export(
        &self,
        spec: Spec,
        tables: Tables,
        out_root: &Path,
        reuse: bool,
        quiet: bool,
    ) -> Result<String> {
        let spec = own(self, spec, tables)?;
        Ok(export(self, &spec, out_root, reuse, !quiet)?.to_string())
    }

    fn evaluate(&self, spec: Spec, tables: Tables, blob: &[u8]) -> Result<String> {
        let spec = own(self, spec, tables)?;
        Ok(evaluate(self, &spec, blob)?.to_string())
    }
}

/// The family of `families` that reads `spec`'s kind.
pub fn find<'a>(families: &[&'a dyn Plugin], spec: &Spec) -> Result<&'a dyn Plugin, SpecError> {
    families
        .iter()
        .find(|f| f.kinds().contains(&spec.kind.as_str()))
        .copied()
        .ok_or_else(|| SpecError::UnknownKind {
            path: spec.file.clone(),
            kind: spec.kind.clone(),
            known: families.iter().flat_map(|f| f.kinds()).copied().collect(),
        })
}
