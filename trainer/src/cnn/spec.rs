//! The CNN family's `[model]` table: the input's shape and the layers.
//!
//! ```toml
//! [model]
//! input = [8, 8, 1]        # height, width, channels (channels last); [steps, channels] for a series
//! layers = [
//!   "conv2d 16 3x3 pad same", "batchnorm", "relu",
//!   "save 0", "conv2d 16 3x3 pad same", "batchnorm", "relu",
//!   "conv2d 16 3x3 pad same", "batchnorm", "add 0", "relu",
//!   "maxpool 2", "gap", "dense 10", "softmax",
//! ]
//! ```
//!
//! The convolution layers (the *front*), each over the feature map the
//! layer before produced:
//!
//! | layer | meaning |
//! | --- | --- |
//! | `conv2d F K [stride S] [pad same\|valid] [dilation D]` | `F` filters of `K` (`3` or `3x3`, `HxW`) |
//! | `conv1d F K [stride S] [pad same\|valid] [dilation D]` | the same over the width of a 1-D map (height 1), `K`, `S`, `D` single numbers |
//! | `dwconv2d K [...]`, `dwconv1d K [...]` | depthwise: one filter per channel |
//! | `maxpool K [stride S] [pad ...]`, `avgpool K [...]` | pooling; `K` on a 1-D map is its width, the stride defaults to `K` |
//! | `gap` | global average pooling: one value per channel |
//! | `batchnorm` | batch normalization, right after a convolution: trained, then folded into it at export |
//! | `relu`, `relu6`, `leaky_relu A`, `sigmoid`, `tanh`, `gelu`, `save S`, `add S` | as in the dense stack, on the map |
//!
//! Padding is `valid` unless `pad same` (TensorFlow's rule: `ceil(input /
//! stride)` outputs, the smaller half of the padding before); strides and
//! dilations default to 1. A pointwise convolution is `conv2d F 1x1`.
//!
//! The first `dense`, `flatten` or `softmax` ends the front: from there on
//! the layers are a dense stack ([`crate::dense::spec`]) on the flattened
//! map (height, width, channels: the runtime's order), the *head*. A
//! residual `add` joins maps of the same shape saved in the same part.
//!
//! Every shape is worked out here, before any data is read, by the
//! runtime's own rule ([`Window::output`]); a kernel larger than its padded
//! input, a map beyond the runtime's limits or a residual of two shapes is
//! a one-line error naming the layer.

use std::fmt;

use runtime::format::{FeatureMap, Padding, Pool2dKind, Window};
use serde::Deserialize;

use crate::dense::spec::{LayerProblem, LayerSpec, MAX_SKIP_SLOTS};
use crate::limits;
use crate::spec::{Spec, SpecError, Tables};

/// Every layer keyword a CNN reads, for error messages.
pub const KNOWN_LAYERS: &str = "conv2d F K, conv1d F K, dwconv2d K, dwconv1d K, maxpool K, avgpool K, gap, batchnorm, flatten, dense N, relu, relu6, leaky_relu ALPHA, sigmoid, tanh, gelu, softmax, save SLOT, add SLOT";

/// The CNN family's part of a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct CnnSpec {
    /// The input feature map (a series of `steps x channels` is `1 x steps x channels`).
    pub input: FeatureMap,
    /// The layers before the head, each with the maps it reads and writes.
    pub front: Vec<FrontLayer>,
    /// The dense stack on the flattened output of the front.
    pub head: Vec<LayerSpec>,
}

/// One layer of the front with its input and output maps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrontLayer {
    /// What it does.
    pub kind: FrontKind,
    /// The map it reads.
    pub input: FeatureMap,
    /// The map it writes.
    pub output: FeatureMap,
}

/// What a front layer does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FrontKind {
    /// A standard or depthwise convolution (`filters == channels` for depthwise).
    Conv {
        /// One filter per channel.
        depthwise: bool,
        /// Output channels.
        filters: usize,
        /// Kernel, stride, dilation, padding.
        window: Window,
    },
    /// Batch normalization of the convolution before (folded at export).
    BatchNorm,
    /// Max or average pooling (global: a window the size of the map).
    Pool {
        /// Maximum or mean.
        kind: Pool2dKind,
        /// Window, stride, padding.
        window: Window,
    },
    /// An activation, `save` or `add`, on the map.
    Op(LayerSpec),
}

impl FrontLayer {
    /// Whether the layer is a global average pooling (`gap`).
    pub fn is_global(&self) -> bool {
        matches!(self.kind, FrontKind::Pool { kind: Pool2dKind::Average, window }
            if window.padding == Padding::Valid
                && window.kernel_h == self.input.height
                && window.kernel_w == self.input.width)
    }
}

impl fmt::Display for FrontLayer {
    /// The layer in the spec's syntax (as resolved: kernels in full).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pad = |w: &Window| match w.padding {
            Padding::Same => " pad same",
            Padding::Valid => "",
        };
        match self.kind {
            FrontKind::Conv {
                depthwise,
                filters,
                window: w,
            } => {
                let name = if depthwise { "dwconv2d" } else { "conv2d" };
                write!(f, "{name}")?;
                if !depthwise {
                    write!(f, " {filters}")?;
                }
                write!(f, " {}x{}", w.kernel_h, w.kernel_w)?;
                if (w.stride_h, w.stride_w) != (1, 1) {
                    write!(f, " stride {}x{}", w.stride_h, w.stride_w)?;
                }
                if (w.dilation_h, w.dilation_w) != (1, 1) {
                    write!(f, " dilation {}x{}", w.dilation_h, w.dilation_w)?;
                }
                f.write_str(pad(&w))
            }
            FrontKind::BatchNorm => f.write_str("batchnorm"),
            FrontKind::Pool { .. } if self.is_global() => f.write_str("gap"),
            FrontKind::Pool { kind, window: w } => {
                let name = match kind {
                    Pool2dKind::Max => "maxpool",
                    Pool2dKind::Average => "avgpool",
                };
                write!(
                    f,
                    "{name} {}x{} stride {}x{}{}",
                    w.kernel_h,
                    w.kernel_w,
                    w.stride_h,
                    w.stride_w,
                    pad(&w)
                )
            }
            FrontKind::Op(op) => op.fmt(f),
        }
    }
}

/// `[model]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelSection {
    input: Vec<usize>,
    layers: Vec<String>,
}

/// `"{h} x {w} x {c}"`.
pub fn show(map: &FeatureMap) -> String {
    format!("{}x{}x{}", map.height, map.width, map.channels)
}

/// Parse and check the CNN family's tables.
pub fn parse(spec: &Spec, tables: &mut Tables) -> Result<CnnSpec, SpecError> {
    tables.unused(&["series"])?;
    spec.dataset()?;
    spec.training()?;
    let model: ModelSection = tables.require("model")?;
    let input = match model.input[..] {
        [steps, channels] => FeatureMap {
            height: 1,
            width: steps as u32,
            channels: channels as u32,
        },
        [height, width, channels] => FeatureMap {
            height: height as u32,
            width: width as u32,
            channels: channels as u32,
        },
        _ => {
            return Err(spec.invalid(
                "model.input",
                format!(
                    "must be [height, width, channels] or [steps, channels], got {:?}",
                    model.input
                ),
            ))
        }
    };
    if model.input.contains(&0) {
        return Err(spec.invalid(
            "model.input",
            format!("every dimension must be at least 1, got {:?}", model.input),
        ));
    }
    check_map(&input).map_err(|p| spec.above("model.input", p))?;
    parse_layers(spec, input, &model.layers)
}

/// A map's dimensions and size against the runtime's limits.
fn check_map(map: &FeatureMap) -> Result<(), String> {
    for (what, d) in [
        ("height", map.height),
        ("width", map.width),
        ("channels", map.channels),
    ] {
        limits::WIDTH.check(what, d as usize)?;
    }
    let size = map.height as usize * map.width as usize * map.channels as usize;
    limits::TENSOR.check(&format!("map {} =", show(map)), size)
}

/// What a tensor is between layers: a map (in the front) or a vector (in
/// the head).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Map(FeatureMap),
    Vector(usize),
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Map(m) => f.write_str(&show(m)),
            Shape::Vector(n) => write!(f, "{n} values"),
        }
    }
}

/// A layer as written, before it meets its input map.
enum Written {
    Conv {
        depthwise: bool,
        one_d: bool,
        filters: usize,
        kernel: Pair,
        stride: Pair,
        dilation: Pair,
        padding: Padding,
    },
    Pool {
        kind: Pool2dKind,
        kernel: Pair,
        stride: Option<Pair>,
        padding: Padding,
    },
    Global,
    BatchNorm,
    Flatten,
    Stack(LayerSpec),
}

/// A kernel, stride or dilation as written: `3` (one number) or `3x2`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pair {
    One(u32),
    Two(u32, u32),
}

impl Pair {
    fn parse(text: &str, what: &str) -> Result<Pair, String> {
        let number = |t: &str| match t.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "{what} must be a positive integer or HxW, got {text:?}"
            )),
        };
        match text.split_once('x') {
            Some((h, w)) => Ok(Pair::Two(number(h)?, number(w)?)),
            None => Ok(Pair::One(number(text)?)),
        }
    }

    /// `(height, width)`: one number is square on a 2-D map and the width
    /// on a 1-D map (`one_d`).
    fn resolve(self, one_d: bool) -> (u32, u32) {
        match self {
            Pair::One(n) if one_d => (1, n),
            Pair::One(n) => (n, n),
            Pair::Two(h, w) => (h, w),
        }
    }
}

/// Parse one layer string.
fn parse_written(text: &str) -> Result<Written, LayerProblem> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let Some((&keyword, args)) = words.split_first() else {
        return Err(LayerProblem::Unknown(String::new()));
    };
    let bad = |p: String| LayerProblem::BadArguments(p);
    let conv = |depthwise: bool, one_d: bool| -> Result<Written, LayerProblem> {
        let positional = if depthwise { 1 } else { 2 };
        if args.len() < positional {
            return Err(bad(if depthwise {
                format!("{keyword} needs a kernel size, e.g. `{keyword} 3`")
            } else {
                format!("{keyword} needs filters and a kernel size, e.g. `{keyword} 16 3`")
            }));
        }
        let filters = if depthwise {
            0
        } else {
            match args[0].parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(bad(format!(
                        "filters must be a positive integer, got {:?}",
                        args[0]
                    )))
                }
            }
        };
        let kernel = Pair::parse(args[positional - 1], "kernel").map_err(bad)?;
        let options = options(&args[positional..], &["stride", "pad", "dilation"]).map_err(bad)?;
        let pair = |key: &str| -> Result<Pair, LayerProblem> {
            options
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(Ok(Pair::One(1)), |(_, v)| Pair::parse(v, key).map_err(bad))
        };
        let (stride, dilation) = (pair("stride")?, pair("dilation")?);
        if one_d {
            for (what, p) in [
                ("kernel", kernel),
                ("stride", stride),
                ("dilation", dilation),
            ] {
                if let Pair::Two(..) = p {
                    return Err(bad(format!(
                        "{keyword} takes a single {what} (it slides along the width)"
                    )));
                }
            }
        }
        Ok(Written::Conv {
            depthwise,
            one_d,
            filters,
            kernel,
            stride,
            dilation,
            padding: padding(&options).map_err(bad)?,
        })
    };
    let pool = |kind: Pool2dKind| -> Result<Written, LayerProblem> {
        let Some((size, rest)) = args.split_first() else {
            return Err(bad(format!(
                "{keyword} needs a window size, e.g. `{keyword} 2`"
            )));
        };
        let kernel = Pair::parse(size, "window").map_err(bad)?;
        let options = options(rest, &["stride", "pad"]).map_err(bad)?;
        let stride = match options.iter().find(|(k, _)| *k == "stride") {
            Some((_, v)) => Some(Pair::parse(v, "stride").map_err(bad)?),
            None => None,
        };
        Ok(Written::Pool {
            kind,
            kernel,
            stride,
            padding: padding(&options).map_err(bad)?,
        })
    };
    let no_args = |w: Written| {
        if args.is_empty() {
            Ok(w)
        } else {
            Err(bad(format!("{keyword} takes no arguments")))
        }
    };
    match keyword {
        "conv2d" => conv(false, false),
        "conv1d" => conv(false, true),
        "dwconv2d" => conv(true, false),
        "dwconv1d" => conv(true, true),
        "maxpool" => pool(Pool2dKind::Max),
        "avgpool" => pool(Pool2dKind::Average),
        "gap" => no_args(Written::Global),
        "batchnorm" => no_args(Written::BatchNorm),
        "flatten" => no_args(Written::Flatten),
        _ => LayerSpec::parse(text).map(Written::Stack),
    }
}

/// `key value` pairs after a layer's positional arguments, each key one of `known`, once.
fn options<'t>(args: &[&'t str], known: &[&str]) -> Result<Vec<(&'t str, &'t str)>, String> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for pair in args.chunks(2) {
        let [key, value] = pair else {
            return Err(format!("`{}` needs a value", pair[0]));
        };
        if !known.contains(key) {
            return Err(format!(
                "unknown option `{key}` (known: {})",
                known.join(", ")
            ));
        }
        if out.iter().any(|(k, _)| k == key) {
            return Err(format!("`{key}` is given twice"));
        }
        out.push((key, value));
    }
    Ok(out)
}

/// The `pad` option: `same` or `valid` (the default).
fn padding(options: &[(&str, &str)]) -> Result<Padding, String> {
    match options.iter().find(|(k, _)| *k == "pad") {
        None | Some((_, "valid")) => Ok(Padding::Valid),
        Some((_, "same")) => Ok(Padding::Same),
        Some((_, other)) => Err(format!("pad must be `same` or `valid`, got {other:?}")),
    }
}

/// Parse `model.layers` over an `input` map: the front, resolved layer by
/// layer, then the head; see the module docs for every check.
fn parse_layers(spec: &Spec, input: FeatureMap, texts: &[String]) -> Result<CnnSpec, SpecError> {
    let path = &spec.file;
    let mut front: Vec<FrontLayer> = Vec::new();
    let mut head: Vec<LayerSpec> = Vec::new();
    let mut shape = Shape::Map(input);
    // Per slot: (1-based index of the save, shape saved, saved in the head).
    let mut saved: [Option<(usize, Shape, bool)>; MAX_SKIP_SLOTS] = [None; MAX_SKIP_SLOTS];
    for (i, text) in texts.iter().enumerate() {
        let index = i + 1;
        let bad = |problem: String| SpecError::BadLayerArguments {
            path: path.clone(),
            index,
            text: text.clone(),
            problem,
        };
        let above = |problem: String| SpecError::AboveLimit {
            path: path.clone(),
            field: format!("layer {index} `{text}`"),
            problem,
        };
        let written = parse_written(text).map_err(|problem| match problem {
            LayerProblem::Unknown(keyword) => SpecError::UnknownLayer {
                path: path.clone(),
                index,
                keyword,
                known: KNOWN_LAYERS,
            },
            LayerProblem::BadArguments(problem) => bad(problem),
        })?;
        // The first dense, flatten or softmax ends the front.
        let ends_front = matches!(
            written,
            Written::Flatten | Written::Stack(LayerSpec::Dense { .. } | LayerSpec::Softmax)
        );
        let map = match shape {
            Shape::Map(map) if !ends_front => map,
            Shape::Map(map) => {
                let width = map.len().unwrap_or(u32::MAX) as usize;
                limits::WIDTH
                    .check(&format!("flattened width {} =", show(&map)), width)
                    .map_err(above)?;
                shape = Shape::Vector(width);
                if matches!(written, Written::Flatten) {
                    continue;
                }
                let Written::Stack(layer) = written else {
                    unreachable!("only stack layers end the front besides flatten")
                };
                head_layer(layer, index, &mut shape, &mut saved, path, text)?;
                head.push(layer);
                continue;
            }
            Shape::Vector(_) => {
                let Written::Stack(layer) = written else {
                    return Err(bad(format!(
                        "a convolution-family layer after the head began (the first dense, flatten or softmax, here at {shape}); move it before"
                    )));
                };
                head_layer(layer, index, &mut shape, &mut saved, path, text)?;
                head.push(layer);
                continue;
            }
        };
        let one_d = map.height == 1;
        let kind = match written {
            Written::Conv {
                depthwise,
                one_d: conv1d,
                filters,
                kernel,
                stride,
                dilation,
                padding,
            } => {
                if conv1d && !one_d {
                    return Err(bad(format!(
                        "a 1-D convolution needs a map of height 1, this one is {}; use conv2d",
                        show(&map)
                    )));
                }
                let (kernel_h, kernel_w) = kernel.resolve(conv1d);
                let (stride_h, stride_w) = stride.resolve(conv1d);
                let (dilation_h, dilation_w) = dilation.resolve(conv1d);
                FrontKind::Conv {
                    depthwise,
                    filters: if depthwise {
                        map.channels as usize
                    } else {
                        filters
                    },
                    window: Window {
                        kernel_h,
                        kernel_w,
                        stride_h,
                        stride_w,
                        dilation_h,
                        dilation_w,
                        padding,
                    },
                }
            }
            Written::Pool {
                kind,
                kernel,
                stride,
                padding,
            } => {
                let (kernel_h, kernel_w) = kernel.resolve(one_d);
                let (stride_h, stride_w) =
                    stride.map_or((kernel_h, kernel_w), |s| s.resolve(one_d));
                FrontKind::Pool {
                    kind,
                    window: Window {
                        kernel_h,
                        kernel_w,
                        stride_h,
                        stride_w,
                        dilation_h: 1,
                        dilation_w: 1,
                        padding,
                    },
                }
            }
            Written::Global => FrontKind::Pool {
                kind: Pool2dKind::Average,
                window: Window {
                    kernel_h: map.height,
                    kernel_w: map.width,
                    stride_h: 1,
                    stride_w: 1,
                    dilation_h: 1,
                    dilation_w: 1,
                    padding: Padding::Valid,
                },
            },
            Written::BatchNorm => {
                if !matches!(
                    front.last(),
                    Some(FrontLayer {
                        kind: FrontKind::Conv { .. },
                        ..
                    })
                ) {
                    return Err(bad(
                        "batchnorm must follow a convolution directly (it is folded into it at export)"
                            .into(),
                    ));
                }
                FrontKind::BatchNorm
            }
            Written::Flatten => unreachable!("flatten ends the front above"),
            Written::Stack(layer) => match layer {
                LayerSpec::Recurrent { .. } => {
                    return Err(bad(
                        "a recurrent layer makes a recurrent model (kind = \"recurrent\")".into(),
                    ))
                }
                LayerSpec::Save { slot } => {
                    saved[usize::from(slot)] = Some((index, shape, false));
                    FrontKind::Op(layer)
                }
                LayerSpec::Add { slot } => {
                    check_add(&saved, slot, index, shape, false, path)?;
                    FrontKind::Op(layer)
                }
                _ => FrontKind::Op(layer),
            },
        };
        let output = output_map(&map, &kind).map_err(bad)?;
        check_map(&output).map_err(above)?;
        front.push(FrontLayer {
            kind,
            input: map,
            output,
        });
        shape = Shape::Map(output);
    }
    let blob_layers = front
        .iter()
        .filter(|l| l.kind != FrontKind::BatchNorm)
        .count()
        + head.len();
    limits::LAYERS
        .check("layer count (batchnorm folded)", blob_layers)
        .map_err(|problem| spec.above("model.layers", problem))?;
    if !front
        .iter()
        .any(|l| matches!(l.kind, FrontKind::Conv { .. }))
    {
        return Err(spec.invalid(
            "model.layers",
            "has no convolution (a dense stack alone is kind = \"mlp\")",
        ));
    }
    Ok(CnnSpec { input, front, head })
}

/// The output map of a front layer over `map`, or why it has none.
fn output_map(map: &FeatureMap, kind: &FrontKind) -> Result<FeatureMap, String> {
    let (window, channels) = match *kind {
        FrontKind::Conv {
            filters, window, ..
        } => (window, filters as u32),
        FrontKind::Pool { window, .. } => (window, map.channels),
        FrontKind::BatchNorm | FrontKind::Op(_) => return Ok(*map),
    };
    for (what, v) in [
        ("kernel", window.kernel_h.max(window.kernel_w)),
        ("stride", window.stride_h.max(window.stride_w)),
        ("dilation", window.dilation_h.max(window.dilation_w)),
    ] {
        limits::WIDTH.check(what, v as usize)?;
    }
    let Some((height, width, _, _)) = window.output(map) else {
        let span = |k: u32, d: u32| (k - 1) * d + 1;
        let pad = match window.padding {
            Padding::Same => "pad same",
            Padding::Valid => "pad valid",
        };
        return Err(format!(
            "the window {}x{} (dilated: {}x{}) is larger than its {} input with {pad}",
            window.kernel_h,
            window.kernel_w,
            span(window.kernel_h, window.dilation_h),
            span(window.kernel_w, window.dilation_w),
            show(map)
        ));
    };
    Ok(FeatureMap {
        height,
        width,
        channels,
    })
}

/// A head layer: widths and the head's own residual slots.
fn head_layer(
    layer: LayerSpec,
    index: usize,
    shape: &mut Shape,
    saved: &mut [Option<(usize, Shape, bool)>; MAX_SKIP_SLOTS],
    path: &std::path::Path,
    text: &str,
) -> Result<(), SpecError> {
    match layer {
        LayerSpec::Dense { units } => {
            limits::WIDTH
                .check("width", units)
                .map_err(|problem| SpecError::AboveLimit {
                    path: path.to_path_buf(),
                    field: format!("layer {index} `{text}`"),
                    problem,
                })?;
            *shape = Shape::Vector(units);
        }
        LayerSpec::Recurrent { .. } => {
            return Err(SpecError::BadLayerArguments {
                path: path.to_path_buf(),
                index,
                text: text.to_string(),
                problem: "a recurrent layer makes a recurrent model (kind = \"recurrent\")".into(),
            })
        }
        LayerSpec::Save { slot } => saved[usize::from(slot)] = Some((index, *shape, true)),
        LayerSpec::Add { slot } => check_add(saved, slot, index, *shape, true, path)?,
        _ => {}
    }
    Ok(())
}

/// An `add` reads a slot saved earlier in the same part with its shape.
fn check_add(
    saved: &[Option<(usize, Shape, bool)>; MAX_SKIP_SLOTS],
    slot: u8,
    index: usize,
    shape: Shape,
    in_head: bool,
    path: &std::path::Path,
) -> Result<(), SpecError> {
    match saved[usize::from(slot)] {
        Some((saved_at, saved_shape, saved_in_head)) if saved_in_head == in_head => {
            if saved_shape != shape {
                return Err(SpecError::BadLayerArguments {
                    path: path.to_path_buf(),
                    index,
                    text: format!("add {slot}"),
                    problem: format!(
                        "adds a {shape} tensor to the {saved_shape} one saved at layer {saved_at}"
                    ),
                });
            }
            Ok(())
        }
        _ => Err(SpecError::AddWithoutSave {
            path: path.to_path_buf(),
            index,
            slot,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cnn::CnnFamily;
    use crate::family::parse as parse_spec;
    use crate::spec::fixture::one_line_error;
    use std::path::Path;

    fn spec(input: &str, layers: &str) -> String {
        format!(
            r#"name = "t"
kind = "cnn"
[dataset]
path = "../datasets/digits/digits.csv.gz"
[model]
input = {input}
layers = [{layers}]
[training]
optimizer = {{ kind = "adam", learning_rate = 0.003 }}
epochs = 1
batch_size = 8
"#
        )
    }

    fn parsed(input: &str, layers: &str) -> CnnSpec {
        parse_spec(
            &CnnFamily,
            &spec(input, layers),
            Path::new("specs/test.toml"),
        )
        .unwrap()
        .family
    }

    fn error(input: &str, layers: &str) -> String {
        one_line_error(parse_spec(
            &CnnFamily,
            &spec(input, layers),
            Path::new("specs/test.toml"),
        ))
    }

    fn map(height: u32, width: u32, channels: u32) -> FeatureMap {
        FeatureMap {
            height,
            width,
            channels,
        }
    }

    #[test]
    fn shapes_follow_the_runtimes_rules() {
        let s = parsed(
            "[8, 8, 1]",
            r#""conv2d 16 3x3 pad same", "batchnorm", "relu", "save 0", "dwconv2d 3 pad same", "add 0",
               "maxpool 2", "conv2d 8 1", "avgpool 3 stride 1 pad same", "conv2d 4 2x3 stride 2", "gap", "dense 10", "softmax""#,
        );
        let outputs: Vec<FeatureMap> = s.front.iter().map(|l| l.output).collect();
        assert_eq!(
            outputs,
            [
                map(8, 8, 16),
                map(8, 8, 16),
                map(8, 8, 16),
                map(8, 8, 16),
                map(8, 8, 16),
                map(8, 8, 16),
                map(4, 4, 16),
                map(4, 4, 8),
                map(4, 4, 8),
                // valid 2x3 stride 2 over 4x4: (4 - 2) / 2 + 1 = 2, (4 - 3) / 2 + 1 = 1
                map(2, 1, 4),
                map(1, 1, 4),
            ]
        );
        assert!(s.front[10].is_global());
        assert_eq!(s.head, [LayerSpec::Dense { units: 10 }, LayerSpec::Softmax]);
        let shown: Vec<String> = s.front.iter().map(|l| l.to_string()).collect();
        assert_eq!(shown[0], "conv2d 16 3x3 pad same");
        assert_eq!(shown[4], "dwconv2d 3x3 pad same");
        assert_eq!(shown[6], "maxpool 2x2 stride 2x2");
        assert_eq!(shown[9], "conv2d 4 2x3 stride 2x2");
        assert_eq!(shown[10], "gap");
        let FrontKind::Conv { filters, .. } = s.front[4].kind else {
            panic!("depthwise");
        };
        assert_eq!(filters, 16);
    }

    #[test]
    fn one_d_layers_slide_along_the_width() {
        let s = parsed(
            "[100, 6]",
            r#""conv1d 16 5 stride 2 pad same dilation 1", "maxpool 2", "dwconv1d 3 dilation 2", "gap", "flatten", "dense 4""#,
        );
        assert_eq!(s.input, map(1, 100, 6));
        let outputs: Vec<FeatureMap> = s.front.iter().map(|l| l.output).collect();
        // same: ceil(100 / 2) = 50; pool 2 -> 25; valid span (3 - 1) * 2 + 1 = 5 -> 21
        assert_eq!(
            outputs,
            [
                map(1, 50, 16),
                map(1, 25, 16),
                map(1, 21, 16),
                map(1, 1, 16)
            ]
        );
        let FrontKind::Conv { window, .. } = s.front[0].kind else {
            panic!("conv");
        };
        assert_eq!(
            (
                window.kernel_h,
                window.kernel_w,
                window.stride_h,
                window.stride_w
            ),
            (1, 5, 1, 2)
        );
    }

    #[test]
    fn bad_layers_name_the_layer_and_the_problem() {
        let cases = [
            (
                "[8, 8, 1]",
                r#""conv2d 16 9x9", "dense 10""#,
                "layer 1: \"conv2d 16 9x9\": the window 9x9 (dilated: 9x9) is larger than its 8x8x1 input with pad valid",
            ),
            (
                "[8, 8, 1]",
                r#""conv2d 4 3 dilation 4", "dense 10""#,
                "the window 3x3 (dilated: 9x9) is larger than its 8x8x1 input",
            ),
            (
                "[8, 8, 1]",
                r#""conv1d 4 3", "dense 10""#,
                "a 1-D convolution needs a map of height 1, this one is 8x8x1; use conv2d",
            ),
            (
                "[8, 8, 1]",
                r#""conv2d 4 3", "relu", "batchnorm", "dense 10""#,
                "layer 3: \"batchnorm\": batchnorm must follow a convolution directly",
            ),
            (
                "[8, 8, 1]",
                r#""conv2d 4 3 stride 0", "dense 10""#,
                "stride must be a positive integer or HxW, got \"0\"",
            ),
            (
                "[8, 8, 1]",
                r#""conv2d 4 3 pad full", "dense 10""#,
                "pad must be `same` or `valid`, got \"full\"",
            ),
            (
                "[8, 8, 1]",
                r#""conv2d 4 3 stride", "dense 10""#,
                "`stride` needs a value",
            ),
            (
                "[8, 8, 1]",
                r#""conv2d 4 3 groups 2", "dense 10""#,
                "unknown option `groups` (known: stride, pad, dilation)",
            ),
            (
                "[8, 8, 1]",
                r#""maxpool 0", "dense 10""#,
                "window must be a positive integer or HxW, got \"0\"",
            ),
            (
                "[8, 8, 1]",
                r#""conv2d 4 3", "save 0", "conv2d 4 3", "add 0", "dense 10""#,
                "layer 4: \"add 0\": adds a 4x4x4 tensor to the 6x6x4 one saved at layer 2",
            ),
            (
                "[8, 8, 1]",
                r#""conv2d 4 3", "save 0", "dense 144", "add 0""#,
                "layer 4: \"add 0\" has no earlier \"save 0\"",
            ),
            (
                "[8, 8, 1]",
                r#""conv2d 4 3", "dense 10", "conv2d 4 1""#,
                "layer 3: \"conv2d 4 1\": a convolution-family layer after the head began",
            ),
            (
                "[8, 8, 1]",
                r#""conv3d 4 3", "dense 10""#,
                "layer 1: unknown layer \"conv3d\" (known: conv2d F K,",
            ),
            (
                "[8, 8, 1]",
                r#""dense 10", "softmax""#,
                "model.layers has no convolution",
            ),
            (
                "[8, 8]",
                r#""conv2d 4 3", "dense 10""#,
                "layer 1: \"conv2d 4 3\": the window 3x3 (dilated: 3x3) is larger than its 1x8x8 input",
            ),
            (
                "[8, 8, 0]",
                r#""conv2d 4 3", "dense 10""#,
                "model.input every dimension must be at least 1",
            ),
            (
                "[2, 8, 8, 1]",
                r#""conv2d 4 3", "dense 10""#,
                "model.input must be [height, width, channels] or [steps, channels]",
            ),
            (
                "[256, 256, 2]",
                r#""conv2d 4 3", "dense 10""#,
                "model.input: map 256x256x2 = 131072 is above the runtime's limit of 65536 (runtime::format::MAX_TENSOR)",
            ),
            (
                "[64, 64, 1]",
                r#""conv2d 16 1", "dense 10""#,
                "layer 2 `dense 10`: flattened width 64x64x16 = 65536 is above the runtime's limit of 4096",
            ),
        ];
        for (input, layers, expected) in cases {
            let message = error(input, layers);
            assert!(message.contains(expected), "{layers}: {message}");
        }
    }
}
