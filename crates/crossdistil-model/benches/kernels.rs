//! Micro-benchmarks of the input's hot kernels at the benchmark shape (10 fields, vocabulary
//! 100,000, dimension 16, batch 1024): the gather plan and embedding fill of a batch, and the
//! row-wise lazy Adam update of the touched rows. `cargo bench -p crossdistil-model`.

use criterion::{Criterion, criterion_group, criterion_main};
use crossdistil_model::{AdamConfig, EmbeddingTable, FieldPlan, SparseOptimConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const FIELDS: usize = 10;
const VOCAB: usize = 100_000;
const DIM: usize = 16;
const BATCH: usize = 1024;

fn setup() -> (Vec<EmbeddingTable>, Vec<Vec<u32>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let tables = (0..FIELDS)
        .map(|f| EmbeddingTable::new(format!("f{f}"), VOCAB, DIM, 0.01, &mut rng).unwrap())
        .collect();
    // Skewed ids, as in click logs: squares of uniforms put mass on small ids.
    let ids = (0..FIELDS)
        .map(|_| {
            (0..BATCH)
                .map(|_| {
                    let u: f64 = rng.random();
                    ((u * u) * VOCAB as f64) as u32
                })
                .collect()
        })
        .collect();
    (tables, ids)
}

fn gather(c: &mut Criterion) {
    let (tables, ids) = setup();
    let width = FIELDS * DIM;
    c.bench_function("gather 10 fields x 1024 rows (plan + fill)", |b| {
        let mut emb = vec![0.0f32; BATCH * width];
        b.iter(|| {
            for (f, (t, ids)) in tables.iter().zip(&ids).enumerate() {
                let plan = FieldPlan::new(t, f * DIM, ids, None).unwrap();
                plan.fill(t, &mut emb, width);
            }
            std::hint::black_box(&emb);
        })
    });
}

fn sparse_update(c: &mut Criterion) {
    let (mut tables, ids) = setup();
    let plans: Vec<FieldPlan> = tables
        .iter()
        .zip(&ids)
        .enumerate()
        .map(|(f, (t, ids))| FieldPlan::new(t, f * DIM, ids, None).unwrap())
        .collect();
    let grad: Vec<f32> = (0..BATCH * FIELDS * DIM)
        .map(|i| ((i % 97) as f32 - 48.0) * 1e-4)
        .collect();
    let opt = SparseOptimConfig::Adam(AdamConfig::default());
    let mut step = 0;
    c.bench_function("lazy Adam on the touched rows of 10 tables", |b| {
        b.iter(|| {
            step += 1;
            for (t, p) in tables.iter_mut().zip(&plans) {
                let g = p.accumulate(&grad, FIELDS * DIM);
                t.update_rows(&p.unique, &g, &opt, 1e-3, step).unwrap();
            }
        })
    });
}

criterion_group!(benches, gather, sparse_update);
criterion_main!(benches);
