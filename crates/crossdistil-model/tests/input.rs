//! Gathering a batch: the values of `x` and the checks on the batch.

mod common;

use std::collections::BTreeMap;

use candle_core::Device;
use common::{batch, schema};
use crossdistil_model::{FeatureInput, InputSchema};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn input() -> FeatureInput {
    let dims = BTreeMap::from([("item".to_string(), 6)]);
    FeatureInput::new(&schema(), 4, &dims, 0.1, &mut ChaCha8Rng::seed_from_u64(1)).unwrap()
}

#[test]
fn x_holds_rows_means_zeros_and_dense_values() {
    let inp = input();
    let b = batch(2);
    let g = inp.gather(&b, &Device::Cpu).unwrap();
    let x = g.x.to_vec2::<f32>().unwrap();
    assert_eq!(inp.in_dim(), 21);
    assert_eq!(inp.emb_width(), 18);
    let [user, item, cat, tags] = [0, 1, 2, 3].map(|i| &inp.tables()[i]);
    assert_eq!(x.len(), 8);
    for (r, xr) in x.iter().enumerate() {
        assert_eq!(xr[0..4], *user.row(b.sparse[r * 3]));
        assert_eq!(xr[4..10], *item.row(b.sparse[r * 3 + 1]));
        assert_eq!(xr[10..14], *cat.row(b.sparse[r * 3 + 2]));
        assert_eq!(xr[18..21], b.dense[r * 3..r * 3 + 3]);
    }
    // Row 0: tags [1, 2] -> mean; row 1: [] -> zeros; row 3: [2, 2, 5] -> repeated id counts twice.
    for j in 0..4 {
        assert!((x[0][14 + j] - (tags.row(1)[j] + tags.row(2)[j]) / 2.0).abs() < 1e-7);
        assert_eq!(x[1][14 + j], 0.0);
        let want = (2.0 * tags.row(2)[j] + tags.row(5)[j]) / 3.0;
        assert!((x[3][14 + j] - want).abs() < 1e-7);
    }
    assert_eq!(g.leaf.dims(), [8, 18]);
    let user_plan = &g.plan.fields[0];
    assert_eq!(user_plan.unique, [0, 1, 2, 3, 5, 19]);
    assert_eq!(user_plan.inverse, [1, 2, 3, 1, 0, 4, 5, 2]);
    assert_eq!(
        g.plan.fields[3].offsets.as_deref(),
        Some(&b.multi[0].offsets[..])
    );
}

#[test]
fn malformed_batches_are_refused() {
    let inp = input();
    let dev = Device::Cpu;
    let mut b = batch(2);
    b.sparse[1] = 30;
    let e = inp.gather(&b, &dev).unwrap_err().to_string();
    assert!(
        e.contains("input.sparse.item: id 30 is out of range"),
        "{e}"
    );
    let mut b = batch(2);
    b.multi[0].ids[0] = 12;
    assert!(
        inp.gather(&b, &dev)
            .unwrap_err()
            .to_string()
            .contains("input.multi.tags")
    );
    let mut b = batch(2);
    b.dense.pop();
    assert!(inp.gather(&b, &dev).is_err());
    let mut b = batch(2);
    b.multi[0].offsets[2] = 0;
    assert!(inp.gather(&b, &dev).is_err());
    let mut b = batch(2);
    b.multi.clear();
    assert!(inp.gather(&b, &dev).is_err());
}

#[test]
fn dense_only_and_embedding_only_inputs() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let dense_only = InputSchema {
        sparse: vec![],
        multi: vec![],
        n_dense: 2,
        dense_names: vec![],
    };
    let inp = FeatureInput::new(&dense_only, 4, &BTreeMap::new(), 0.1, &mut rng).unwrap();
    let b = crossdistil_data::Batch {
        rows: vec![0, 1],
        dense: vec![1.0, 2.0, 3.0, 4.0],
        ..Default::default()
    };
    let g = inp.gather(&b, &Device::Cpu).unwrap();
    assert_eq!(
        g.x.to_vec2::<f32>().unwrap(),
        vec![vec![1.0, 2.0], vec![3.0, 4.0]]
    );
    let emb_only = InputSchema {
        sparse: vec![("a".into(), 3)],
        multi: vec![],
        n_dense: 0,
        dense_names: vec![],
    };
    let inp = FeatureInput::new(&emb_only, 2, &BTreeMap::new(), 0.1, &mut rng).unwrap();
    let b = crossdistil_data::Batch {
        rows: vec![0],
        sparse: vec![2],
        ..Default::default()
    };
    let g = inp.gather(&b, &Device::Cpu).unwrap();
    assert_eq!(g.x.to_vec2::<f32>().unwrap()[0], inp.tables()[0].row(2));
    let empty = InputSchema {
        sparse: vec![],
        multi: vec![],
        n_dense: 0,
        dense_names: vec![],
    };
    assert!(FeatureInput::new(&empty, 2, &BTreeMap::new(), 0.1, &mut rng).is_err());
}
