//! The registry of dense trainable parameters.

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

use crate::device::ensure_cpu;
use crate::init::Init;

/// Every dense trainable `Var` of a model, by dotted name ("tower0.layer1.weight"), in name
/// order, and named views into the packed ones ("backbone.expert0.layer1.weight" of
/// "backbone.experts.weight"). All parameters are f32 on one device.
#[derive(Debug, Clone)]
pub struct ParamStore {
    vars: BTreeMap<String, Var>,
    /// Named views into packed parameters: view name -> (packed parameter's name, view).
    views: BTreeMap<String, (String, Tensor)>,
    device: Device,
}

impl ParamStore {
    /// An empty store on `device`, which must be the CPU (the model's fused ops run there
    /// only); any other device is an error that names it.
    pub fn new(device: Device) -> Result<Self> {
        ensure_cpu(device.location())?;
        Ok(ParamStore {
            vars: BTreeMap::new(),
            views: BTreeMap::new(),
            device,
        })
    }

    /// The device of every parameter (the CPU).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The parameter `name`, created with `init` (values drawn from `rng`) if it does not exist
    /// yet. An existing parameter must have `shape`.
    pub fn get_or_init(
        &mut self,
        name: &str,
        shape: &[usize],
        init: Init,
        rng: &mut ChaCha8Rng,
    ) -> Result<Var> {
        self.get_or_init_with(name, shape, |rng| init.sample(shape, rng), rng)
    }

    /// The parameter `name` of `shape`, with the values `values` draws from `rng` if it does
    /// not exist yet (one parameter packing several, each drawn as on its own). An existing
    /// parameter must have `shape`.
    pub fn get_or_init_with(
        &mut self,
        name: &str,
        shape: &[usize],
        values: impl FnOnce(&mut ChaCha8Rng) -> Result<Vec<f32>>,
        rng: &mut ChaCha8Rng,
    ) -> Result<Var> {
        if let Some(var) = self.vars.get(name) {
            if var.dims() != shape {
                candle_core::bail!(
                    "parameter {name} exists with shape {:?}, requested {shape:?}",
                    var.dims()
                );
            }
            return Ok(var.clone());
        }
        let values = values(rng)?;
        let var = Var::from_vec(values, shape, &self.device)?;
        self.vars.insert(name.to_string(), var.clone());
        Ok(var)
    }

    /// Registers `view`, a part of the packed parameter `packed`, under `name`, for
    /// [`ParamStore::unpacked_tensors`].
    pub fn add_view(&mut self, name: &str, packed: &str, view: Tensor) {
        self.views
            .insert(name.to_string(), (packed.to_string(), view));
    }

    /// Copies of every parameter, each packed one replaced by its named views: one tensor per
    /// layer, as a model without packed parameters has them (for export to other tools).
    pub fn unpacked_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let packed: std::collections::BTreeSet<&str> =
            self.views.values().map(|(p, _)| p.as_str()).collect();
        let mut out = HashMap::new();
        for (n, v) in &self.vars {
            if !packed.contains(n.as_str()) {
                out.insert(n.clone(), v.as_detached_tensor().copy()?);
            }
        }
        for (n, (_, t)) in &self.views {
            out.insert(n.clone(), t.detach().copy()?);
        }
        Ok(out)
    }

    /// The parameter `name`, if the store has it.
    pub fn get(&self, name: &str) -> Option<&Var> {
        self.vars.get(name)
    }

    /// `(name, var)` pairs in name order; the `Var`s share storage with the store.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.vars
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    }

    /// The number of parameters (packed ones count once).
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether the store holds no parameter.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// The number of scalar parameters.
    pub fn num_elements(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// A copy of every parameter (later updates of the `Var`s do not change it).
    pub fn save_tensors(&self) -> Result<HashMap<String, Tensor>> {
        self.vars
            .iter()
            .map(|(n, v)| Ok((n.clone(), v.as_detached_tensor().copy()?)))
            .collect()
    }

    /// Sets every parameter from `tensors`, which must hold exactly the store's names with the
    /// store's shapes (any float dtype, converted to f32). Nothing changes on error.
    pub fn load_tensors(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (var, t) in self.staged(tensors)? {
            var.set(&t)?;
        }
        Ok(())
    }

    /// Checks `tensors` as [`ParamStore::load_tensors`] does and pairs each parameter with its
    /// new value, converted, without setting anything.
    pub(crate) fn staged(&self, tensors: &HashMap<String, Tensor>) -> Result<Vec<(Var, Tensor)>> {
        if let Some(extra) = tensors.keys().find(|n| !self.vars.contains_key(*n)) {
            candle_core::bail!("unexpected tensor {extra}: the model has no such parameter");
        }
        let mut staged = Vec::with_capacity(self.vars.len());
        for (name, var) in &self.vars {
            let Some(t) = tensors.get(name) else {
                candle_core::bail!("missing tensor {name}");
            };
            if t.dims() != var.dims() {
                candle_core::bail!(
                    "tensor {name} has shape {:?}, the model expects {:?}",
                    t.dims(),
                    var.dims()
                );
            }
            let value = t.to_dtype(DType::F32)?.to_device(&self.device)?;
            staged.push((var.clone(), value));
        }
        Ok(staged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn get_or_init_reuses_and_checks_shape() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut ps = ParamStore::new(Device::Cpu).unwrap();
        let a = ps
            .get_or_init("b.w", &[2, 3], Init::XavierUniform, &mut rng)
            .unwrap();
        let b = ps
            .get_or_init("b.w", &[2, 3], Init::Zeros, &mut rng)
            .unwrap();
        assert_eq!(a.as_tensor().id(), b.as_tensor().id());
        assert!(
            ps.get_or_init("b.w", &[3, 2], Init::Zeros, &mut rng)
                .is_err()
        );
        ps.get_or_init("a.b", &[4], Init::Zeros, &mut rng).unwrap();
        let names: Vec<String> = ps.vars().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a.b", "b.w"]);
        assert_eq!(ps.num_elements(), 10);
    }

    #[test]
    fn load_checks_names_and_shapes() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut ps = ParamStore::new(Device::Cpu).unwrap();
        ps.get_or_init("w", &[2, 2], Init::XavierUniform, &mut rng)
            .unwrap();
        let saved = ps.save_tensors().unwrap();
        // The snapshot does not follow later updates.
        ps.get("w")
            .unwrap()
            .set(&Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap())
            .unwrap();
        assert_ne!(
            saved["w"].to_vec2::<f32>().unwrap(),
            vec![vec![0.0f32; 2]; 2]
        );
        ps.load_tensors(&saved).unwrap();
        assert_eq!(
            ps.get("w").unwrap().to_vec2::<f32>().unwrap(),
            saved["w"].to_vec2::<f32>().unwrap()
        );

        let mut wrong = saved.clone();
        wrong.insert(
            "w".into(),
            Tensor::zeros((3, 2), DType::F32, &Device::Cpu).unwrap(),
        );
        let e = ps.load_tensors(&wrong).unwrap_err().to_string();
        assert!(e.contains("tensor w has shape"), "{e}");
        let e = ps.load_tensors(&HashMap::new()).unwrap_err().to_string();
        assert!(e.contains("missing tensor w"), "{e}");
        let mut extra = saved;
        extra.insert(
            "v".into(),
            Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap(),
        );
        let e = ps.load_tensors(&extra).unwrap_err().to_string();
        assert!(e.contains("unexpected tensor v"), "{e}");
    }
}
