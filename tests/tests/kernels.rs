//! Every fast kernel equals its reference bit for bit: the property of
//! `runtime::kernels::check`, on random shapes, offsets and values, shrunk
//! to a small case when it fails. On the host the build selects the
//! portable fast kernels (the blocked f32 dense, the im2col convolution);
//! `cargo xtask test` runs the same property on the five Cortex-M cores
//! under QEMU, where the Armv7E-M ones are selected (`firmware/kernel-check`).

use proptest::prelude::*;
use runtime::kernels::check::{check, Buffers, Case, Kernel, DRAWS};

fn holds(kernel: Kernel, draws: [u32; DRAWS], seed: u64) -> Result<(), TestCaseError> {
    let mut buffers = Box::new(Buffers::new());
    let case = Case::new(kernel, draws, seed);
    prop_assert_eq!(check(&case, &mut buffers), Ok(()));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn dense_f32(draws in any::<[u32; DRAWS]>(), seed in any::<u64>()) {
        holds(Kernel::DenseF32, draws, seed)?;
    }

    #[test]
    fn dense_i8(draws in any::<[u32; DRAWS]>(), seed in any::<u64>()) {
        holds(Kernel::DenseI8, draws, seed)?;
    }

    #[test]
    fn dense_i8_widened(draws in any::<[u32; DRAWS]>(), seed in any::<u64>()) {
        holds(Kernel::DenseI8Widened, draws, seed)?;
    }

    #[test]
    fn recurrent_gates_i8(draws in any::<[u32; DRAWS]>(), seed in any::<u64>()) {
        holds(Kernel::GatesI8, draws, seed)?;
    }

    #[test]
    fn recurrent_gates_q15(draws in any::<[u32; DRAWS]>(), seed in any::<u64>()) {
        holds(Kernel::GatesQ15, draws, seed)?;
    }

    #[test]
    fn conv_i8(draws in any::<[u32; DRAWS]>(), seed in any::<u64>()) {
        holds(Kernel::ConvI8, draws, seed)?;
    }

    #[test]
    fn depthwise_i8(draws in any::<[u32; DRAWS]>(), seed in any::<u64>()) {
        holds(Kernel::DepthwiseI8, draws, seed)?;
    }
}
