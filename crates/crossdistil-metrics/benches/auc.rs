//! AUC over 10^6 scores (`cargo bench -p crossdistil-metrics`).

use criterion::{Criterion, criterion_group, criterion_main};
use crossdistil_metrics::auc;

fn auc_1e6(c: &mut Criterion) {
    // A deterministic score/label pattern with ties and both classes.
    let n = 1_000_000u64;
    let scores: Vec<f32> = (0..n)
        .map(|i| ((i.wrapping_mul(2_654_435_761) % 10_007) as f32) / 10_007.0)
        .collect();
    let labels: Vec<u8> = (0..n)
        .map(|i| u8::from((i.wrapping_mul(40_503) % 100) < 30))
        .collect();
    c.bench_function("auc of 1e6 scores", |b| {
        b.iter(|| auc(std::hint::black_box(&scores), &labels).unwrap())
    });
}

criterion_group!(benches, auc_1e6);
criterion_main!(benches);
