//! Analytic gradients against central differences, for the tests of the custom ops (here) and
//! of the input's pooling (`tests/finite_differences.rs`, which includes this file).

use candle_core::Var;
use candle_core::backprop::GradStore;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The gradient of `v` in `grads`, flat, as f64.
#[allow(dead_code)] // used by the unit tests, not by `tests/finite_differences.rs`
pub(crate) fn gradient(grads: &GradStore, v: &Var) -> Vec<f64> {
    grads
        .get(v)
        .expect("a gradient")
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// `n` values drawn uniformly from `[-1, 1)`.
pub(crate) fn random(n: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// Compares `grad` with the central difference `(f(v + eps e_i) - f(v - eps e_i)) / (2 eps)` of
/// `f` around `values`, for every `i`, within `tol * (1 + |numeric|)`.
pub(crate) fn check(
    name: &str,
    values: &[f64],
    grad: &[f64],
    f: impl Fn(&[f64]) -> f64,
    eps: f64,
    tol: f64,
) {
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
