//! Training or evaluation.

use rand_chacha::ChaCha8Rng;

/// How a forward pass runs: in training, dropout masks are drawn from the given generator (the
/// same generator state gives the same masks); in evaluation dropout is the identity.
#[derive(Debug)]
pub enum Mode<'a> {
    /// Training: dropout on, its masks drawn from this generator.
    Train(&'a mut ChaCha8Rng),
    /// Evaluation: dropout is the identity.
    Eval,
}
