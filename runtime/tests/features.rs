//! Builds that leave layer families out: every exported blob either loads
//! (its families are compiled in) or fails with `Error::UnsupportedLayer`
//! naming the first missing feature, never anything else.
//!
//! Run with the default (every) feature, and by `cargo xtask test` once per
//! reduced build (`--no-default-features --features int8`, ...), so each
//! family is tested compiled out: the blobs cover all of them.

use runtime::format::Features;
use runtime::{Error, Model};

mod common;
use common::{exported_blobs, open};

/// What a blob needs, from the tests' own (serde) decoding of its layers,
/// and the error a build without some of it must give: the numeric path
/// first (the header is checked before any layer), else the first layer
/// whose kind is missing (its family before its numeric path).
fn needs(blob: &[u8]) -> (Features, Option<Error>) {
    let (header, layers) = open(blob);
    let path = Features::of_numeric(header.numeric);
    let all = layers
        .iter()
        .fold(path, |f, l| f.with(Features::of_kind(l.tag())));
    let error = match path.missing_from(Features::BUILD) {
        Some(feature) => Some(Error::UnsupportedLayer {
            layer: u32::MAX,
            feature,
        }),
        None => layers.iter().enumerate().find_map(|(at, l)| {
            let feature = Features::of_kind(l.tag()).missing_from(Features::BUILD)?;
            Some(Error::UnsupportedLayer {
                layer: at as u32,
                feature,
            })
        }),
    };
    (all, error)
}

#[test]
fn blobs_load_exactly_when_their_families_are_built() {
    let (mut loaded, mut refused) = (0, 0);
    for (path, blob) in exported_blobs() {
        let (needs, error) = needs(&blob);
        match (Model::from_bytes(&blob), error) {
            (Ok(model), None) => {
                assert_eq!(model.features(), needs, "{}", path.display());
                loaded += 1;
            }
            (Err(e), Some(expected)) => {
                assert_eq!(e, expected, "{}", path.display());
                let Error::UnsupportedLayer { feature, .. } = e else {
                    unreachable!()
                };
                let name = feature.names().next().expect("one feature");
                assert!(e.to_string().contains(name), "{e}");
                refused += 1;
            }
            (result, expected) => panic!(
                "{}: got {:?}, expected {expected:?}",
                path.display(),
                result.err()
            ),
        }
    }
    eprintln!(
        "build {}: {loaded} blobs loaded, {refused} refused by feature",
        Features::BUILD
    );
    if Features::BUILD == Features::EVERY {
        assert_eq!(refused, 0);
    } else {
        assert!(refused > 0, "a reduced build refuses some blob");
    }
    assert!(loaded + refused > 20);
}
