//! Analytic gradients against central differences: gate mixing, the cross-stitch unit, and mean
//! pooling of multi-valued fields through gather, the leaf gradient and per-id accumulation.

mod common;

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, Tensor, Var};
use common::to_vec;
use crossdistil_data::{Batch, MultiBatch};
use crossdistil_model::backbone::cross_stitch::stitch;
use crossdistil_model::backbone::gate::mix;
use crossdistil_model::{FeatureInput, InputSchema};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(n: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// Compares `grad` with the central difference of `f` around `values`.
fn check(name: &str, values: &[f64], grad: &[f64], f: impl Fn(&[f64]) -> f64, eps: f64, tol: f64) {
    assert_eq!(values.len(), grad.len());
    for i in 0..values.len() {
        let mut v = values.to_vec();
        v[i] += eps;
        let up = f(&v);
        v[i] -= 2.0 * eps;
        let down = f(&v);
        let numeric = (up - down) / (2.0 * eps);
        assert!(
            (numeric - grad[i]).abs() <= tol * (1.0 + numeric.abs()),
            "{name}[{i}]: analytic {} numeric {numeric}",
            grad[i]
        );
    }
}

#[test]
fn gate_mixing() {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (b, e, h) = (3, 4, 5);
    let logits = random(b * e, &mut rng);
    let experts = random(b * e * h, &mut rng);
    let w = Tensor::from_vec(random(b * h, &mut rng), (b, h), &dev).unwrap();
    let blocks: Vec<usize> = (0..e).rev().collect();
    let f = |l: &Tensor, x: &Tensor| {
        (mix(l, x, &blocks).unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let lv = Var::from_vec(logits.clone(), (b, e), &dev).unwrap();
    let xv = Var::from_vec(experts.clone(), (b, e, h), &dev).unwrap();
    let grads = f(lv.as_tensor(), xv.as_tensor()).backward().unwrap();
    let g = |v: &Var| -> Vec<f64> {
        grads
            .get(v)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let x = Tensor::from_vec(experts.clone(), (b, e, h), &dev).unwrap();
    check(
        "logits",
        &logits,
        &g(&lv),
        |v| {
            let l = Tensor::from_slice(v, (b, e), &dev).unwrap();
            f(&l, &x).to_scalar().unwrap()
        },
        1e-6,
        1e-7,
    );
    let l = Tensor::from_vec(logits.clone(), (b, e), &dev).unwrap();
    check(
        "experts",
        &experts,
        &g(&xv),
        |v| {
            let x = Tensor::from_slice(v, (b, e, h), &dev).unwrap();
            f(&l, &x).to_scalar().unwrap()
        },
        1e-6,
        1e-7,
    );
}

#[test]
fn cross_stitch_unit() {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (t, b, h) = (3, 4, 5);
    let alpha = random(t * t, &mut rng);
    let cols = random(t * b * h, &mut rng);
    let ws: Vec<Tensor> = (0..t)
        .map(|_| Tensor::from_vec(random(b * h, &mut rng), (b, h), &dev).unwrap())
        .collect();
    let f = |a: &Tensor, c: &Tensor| -> Tensor {
        let columns: Vec<Tensor> = (0..t).map(|s| c.get(s).unwrap()).collect();
        let out = stitch(a, &columns).unwrap();
        let terms: Vec<Tensor> = out
            .iter()
            .zip(&ws)
            .map(|(o, w)| (o.sqr().unwrap() * w).unwrap().sum_all().unwrap())
            .collect();
        Tensor::stack(&terms, 0).unwrap().sum_all().unwrap()
    };
    let av = Var::from_vec(alpha.clone(), (t, t), &dev).unwrap();
    let cv = Var::from_vec(cols.clone(), (t, b, h), &dev).unwrap();
    let grads = f(av.as_tensor(), cv.as_tensor()).backward().unwrap();
    let g = |v: &Var| -> Vec<f64> {
        grads
            .get(v)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let c = Tensor::from_vec(cols.clone(), (t, b, h), &dev).unwrap();
    check(
        "alpha",
        &alpha,
        &g(&av),
        |v| {
            f(&Tensor::from_slice(v, (t, t), &dev).unwrap(), &c)
                .to_scalar()
                .unwrap()
        },
        1e-6,
        1e-7,
    );
    let a = Tensor::from_vec(alpha.clone(), (t, t), &dev).unwrap();
    check(
        "columns",
        &cols,
        &g(&cv),
        |v| {
            f(&a, &Tensor::from_slice(v, (t, b, h), &dev).unwrap())
                .to_scalar()
                .unwrap()
        },
        1e-6,
        1e-7,
    );
}

#[test]
fn mean_pooling_through_gather_and_accumulation() {
    let dev = Device::Cpu;
    let schema = InputSchema {
        sparse: vec![("a".into(), 6)],
        multi: vec![("tags".into(), 7)],
        n_dense: 1,
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
