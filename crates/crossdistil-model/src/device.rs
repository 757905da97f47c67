//! The device of a model: the CPU only.
//!
//! The fused ops of the model (the grouped MLP layers with their backward pass, the gates'
//! mixing) read and write candle's CPU storage directly and have no CUDA or Metal kernels, so
//! every constructor that takes a device checks it here, before anything is built, instead of
//! failing inside a forward pass.

use candle_core::{DeviceLocation, Result};

/// `Ok` for the CPU; for any other device an error that names it ("cuda:0", "metal:1").
pub(crate) fn ensure_cpu(location: DeviceLocation) -> Result<()> {
    let name = match location {
        DeviceLocation::Cpu => return Ok(()),
        DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    };
    candle_core::bail!(
        "device {name} is not supported: the model's fused ops run on the CPU only, use Device::Cpu"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_cpu_passes_and_other_devices_are_named() {
        ensure_cpu(Device::Cpu.location()).unwrap();
        let e = ensure_cpu(DeviceLocation::Cuda { gpu_id: 1 }).unwrap_err();
        assert!(
            e.to_string().contains("device cuda:1 is not supported"),
            "{e}"
        );
        assert!(e.to_string().contains("CPU only"), "{e}");
        let e = ensure_cpu(DeviceLocation::Metal { gpu_id: 0 }).unwrap_err();
        assert!(e.to_string().contains("device metal:0"), "{e}");
    }
}
