//! Training or evaluation.

use rand_chacha::ChaCha8Rng;

/// How a forward pass runs: in training, dropout masks are drawn from the given generator (the
/// same generator state gives the same masks); in evaluation dropout is the identity.
#[derive(Debug)]
pub enum Mode<'a> {
    Train(&'a mut ChaCha8Rng),
    Eval,
}
