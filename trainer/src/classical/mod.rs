//! The classical family: clustering and anomaly detectors, each an ordinary
//! runtime blob (a stack of [`LayerDef`](runtime::format::LayerDef)s, the
//! classical ones included) evaluated by the runtime itself. See
//! `docs/classical.md` for the spec keys ([`spec`]).
//!
//! | kind | fitted by | blob |
//! | --- | --- | --- |
//! | `kmeans` | linfa-clustering ([`clustering`]) | `nearest-centroid` |
//! | `hierarchical` | kodama, Ward ([`clustering`]) | `nearest-centroid` of the cluster means |
//! | `pca` | linfa-reduction ([`reconstruct`]) | `save 0, dense k, dense d, squared-error 0, threshold` |
//! | `autoencoder` | a dense stack on the shared loop ([`reconstruct`]) | `save 0, dense.., squared-error 0, threshold` |
//! | `isolation-forest` | our own ([`iforest`]) | `isolation-forest, threshold` |
//!
//! Detectors score sliding windows of a series; their threshold is a
//! quantile of the runtime's scores of the training windows ([`detector`]).
//! Runs over the test data and reports are in [`export`]. Every blob is f32.

pub mod clustering;
pub mod detector;
pub mod export;
pub mod iforest;
pub mod reconstruct;
pub mod spec;

use anyhow::Result;
use runtime::Numeric;

use crate::blob::Blob;
use crate::dataset::{self, Dataset};
use crate::family::{run_of, BlobRun, Family, Trained, F32_ONLY};
use crate::io::ExportDir;
use crate::report::Evaluation;
use crate::spec::{Spec, SpecError, Tables};

pub use clustering::{Clusters, InertiaAt};
pub use detector::{Detector, DetectorData};
pub use export::{ClassicalMetric, ClassicalReport};
pub use spec::{ClassicalSpec, Clustering, DetectorSpec, Fit};

/// The classical family (kinds `kmeans`, `hierarchical`, `pca`,
/// `autoencoder`, `isolation-forest`).
#[derive(Debug, Clone, Copy)]
pub struct ClassicalFamily;

/// A classical model's data.
#[derive(Debug, Clone)]
pub enum ClassicalData {
    /// Clustering: labelled rows, split.
    Clustering {
        /// Rows the centroids are fitted on.
        train: Dataset,
        /// Rows scored for purity (and test vectors).
        test: Dataset,
    },
    /// A detector: windows of the series.
    Detector(DetectorData),
}

/// A fitted classical model.
#[derive(Debug, Clone)]
pub enum Fitted {
    /// Centroids.
    Clusters(Clusters),
    /// A detector with its threshold.
    Detector(Detector),
}

impl Family for ClassicalFamily {
    const KINDS: &'static [&'static str] = &[
        "kmeans",
        "hierarchical",
        "pca",
        "autoencoder",
        "isolation-forest",
    ];
    type Spec = ClassicalSpec;
    type Data = ClassicalData;
    type Model = Fitted;
    type Metric = ClassicalMetric;
    type Details = ClassicalReport;

    fn parse(&self, spec: &Spec, tables: &mut Tables) -> Result<ClassicalSpec, SpecError> {
        spec::parse(spec, tables)
    }

    fn load(&self, spec: &Spec<ClassicalSpec>) -> Result<ClassicalData> {
        Ok(match &spec.family {
            ClassicalSpec::Clustering(_) => {
                let (train, test) = dataset::load_split(spec.dataset()?, &spec.dir)?;
                ClassicalData::Clustering { train, test }
            }
            ClassicalSpec::Detector(d) => {
                ClassicalData::Detector(DetectorData::load(spec.series()?, d, &spec.dir)?)
            }
        })
    }

    fn train(
        &self,
        spec: &Spec<ClassicalSpec>,
        data: &ClassicalData,
        _: bool,
    ) -> Result<Trained<Fitted>> {
        Ok(Trained::fitted(match (&spec.family, data) {
            (ClassicalSpec::Clustering(c), ClassicalData::Clustering { train, .. }) => {
                Fitted::Clusters(clustering::fit(c, train)?)
            }
            (ClassicalSpec::Detector(d), ClassicalData::Detector(data)) => {
                Fitted::Detector(detector::fit(d, &data.train_rows)?)
            }
            _ => anyhow::bail!("the data does not fit the kind"),
        }))
    }

    fn numerics(&self, _: &Spec<ClassicalSpec>) -> &'static [Numeric] {
        F32_ONLY
    }

    fn blob(
        &self,
        _: &Spec<ClassicalSpec>,
        _: &ClassicalData,
        model: &Fitted,
        numeric: Numeric,
    ) -> Result<Blob> {
        if numeric != Numeric::F32 {
            anyhow::bail!("classical models have no int8 blob");
        }
        Ok(match model {
            Fitted::Clusters(c) => clustering::centroid_blob(&c.centroids),
            Fitted::Detector(d) => d.blob.clone(),
        })
    }

    fn evaluate(
        &self,
        _: &Spec<ClassicalSpec>,
        data: &ClassicalData,
        blob: &[u8],
    ) -> Result<Evaluation<ClassicalMetric>> {
        let (metric, vectors) = match data {
            ClassicalData::Clustering { test, .. } => {
                let (run, vectors) = export::run_clustering(blob, test)?;
                (ClassicalMetric::Purity(run), vectors)
            }
            ClassicalData::Detector(d) => {
                let (run, vectors) = export::run_detector(blob, d)?;
                (ClassicalMetric::AnomalyRank(run), vectors)
            }
        };
        Ok(Evaluation { metric, vectors })
    }

    fn finish(
        &self,
        spec: &Spec<ClassicalSpec>,
        data: &ClassicalData,
        trained: &Trained<Fitted>,
        runs: &[BlobRun<ClassicalMetric>],
        _: &ExportDir,
    ) -> Result<ClassicalReport> {
        let metric = &run_of(runs, Numeric::F32)?.evaluation.metric;
        Ok(match (&spec.family, data, &trained.model, metric) {
            (
                ClassicalSpec::Clustering(_),
                ClassicalData::Clustering { train, test },
                Fitted::Clusters(clusters),
                ClassicalMetric::Purity(run),
            ) => ClassicalReport::Clustering(export::clustering_report(
                &spec.kind,
                spec.dataset()?.path.display().to_string(),
                (train, test),
                clusters,
                run,
            )),
            (
                ClassicalSpec::Detector(d),
                ClassicalData::Detector(data),
                Fitted::Detector(detector),
                ClassicalMetric::AnomalyRank(run),
            ) => ClassicalReport::Detector(export::detector_report(
                &spec.kind,
                (spec.series()?, d),
                data,
                detector,
                run,
            )?),
            _ => anyhow::bail!("the runs do not fit the kind"),
        })
    }
}
