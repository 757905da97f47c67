//! Analytic gradients against central differences: mean pooling of multi-valued fields through
//! gather, the leaf gradient and per-id accumulation. The custom ops (gate mixing, the
//! cross-stitch unit) are checked the same way by the crate's unit tests.

mod common;
#[path = "../src/finite_difference.rs"]
mod finite_difference;

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, Tensor};
use common::to_vec;
use crossdistil_data::{Batch, MultiBatch};
use crossdistil_model::{FeatureInput, InputSchema};
use finite_difference::{check, random};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[test]
fn mean_pooling_through_gather_and_accumulation() {
    let dev = Device::Cpu;
    let schema = InputSchema {
        sparse: vec![("a".into(), 6)],
        multi: vec![("tags".into(), 7)],
        n_dense: 1,
        dense_names: vec![],
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let input = FeatureInput::new(&schema, 3, &BTreeMap::new(), 0.5, &mut rng).unwrap();
    // Row 1 repeats id 4; row 2 is empty; ids 3 and 6 of "tags" and 1, 5 of "a" are unused.
    let lists: [&[u32]; 4] = [&[0, 2], &[4, 4, 1], &[], &[2]];
    let mut multi = MultiBatch {
        offsets: vec![0],
        ids: vec![],
    };
    for l in lists {
        multi.ids.extend_from_slice(l);
        multi.offsets.push(multi.ids.len() as u32);
    }
    let batch = Batch {
        rows: vec![0, 1, 2, 3],
        sparse: vec![2, 0, 2, 4],
        multi: vec![multi],
        dense: vec![0.5, -1.0, 2.0, 0.0],
        labels: vec![],
        weights: Vec::new(),
    };
    let w = Tensor::from_vec(random(4 * 7, &mut rng), (4, 7), &dev).unwrap();
    let f = |input: &FeatureInput| -> (
        f64,
        candle_core::backprop::GradStore,
        crossdistil_model::Gathered,
    ) {
        let g = input.gather(&batch, &dev).unwrap();
        let loss = (g.x.to_dtype(DType::F64).unwrap().tanh().unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        (loss.to_scalar().unwrap(), grads, g)
    };
    let (_, grads, gathered) = f(&input);
    let field_grads = input.table_grads(&grads, &gathered).unwrap();
    let saved = input.save_tensors().unwrap();
    for (table, (plan, grad)) in input
        .tables()
        .iter()
        .zip(gathered.plan.fields.iter().zip(&field_grads))
    {
        let name = format!("{}.weight", table.key);
        let values: Vec<f64> = table.weight.iter().map(|&v| v as f64).collect();
        // Analytic gradient of the whole table: accumulated rows at their ids, zero elsewhere.
        let mut full = vec![0.0f64; values.len()];
        for (k, &id) in plan.unique.iter().enumerate() {
            for j in 0..table.dim {
                full[id as usize * table.dim + j] = grad[k * table.dim + j] as f64;
            }
        }
        let eval = |v: &[f64]| -> f64 {
            let mut perturbed: HashMap<String, Tensor> = saved.clone();
            let t = Tensor::from_vec(
                v.iter().map(|&x| x as f32).collect::<Vec<f32>>(),
                (table.vocab, table.dim),
                &dev,
            )
            .unwrap();
            perturbed.insert(name.clone(), t);
            let mut copy = input.clone();
            copy.load_tensors(&perturbed).unwrap();
            f(&copy).0
        };
        check(&name, &values, &full, eval, 1e-2, 2e-3);
    }
    // Unused ids are not in the plan.
    assert_eq!(gathered.plan.fields[0].unique, [0, 2, 4]);
    assert_eq!(gathered.plan.fields[1].unique, [0, 1, 2, 4]);
    assert_eq!(to_vec(&gathered.x).len(), 4 * 7);
}
