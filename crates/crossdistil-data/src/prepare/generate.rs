//! The pieces that the generated sources ([`super::synthetic`], [`super::simulate`]) share: a
//! standard normal drawn from a key rather than a stream (hidden parameters that need no
//! tables), the seeded stream of one chunk, popular ids scattered over the id range, and the
//! loop that makes chunks a few at a time in parallel and hands them on in order.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::Result;
use crate::writer::ROW_GROUP_ROWS;

/// A deterministic standard normal draw from a key `(seed, a, b, c)` (splitmix64, then
/// Box-Muller): the hidden parameters need no tables, so a vocabulary of 10^7 costs no memory.
pub(crate) fn hashed_normal(seed: u64, a: u64, b: u64, c: u64) -> f32 {
    let mut x = seed
        ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ c.wrapping_mul(0x1656_67B1_9E37_79F9);
    let mut next = || {
        // splitmix64
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let u1 = ((next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let u2 = (next() >> 11) as f64 / (1u64 << 53) as f64;
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// The ChaCha8 stream of chunk `index` of a set generated from `seed`: each chunk has its own,
/// so the result does not depend on how many chunks are made at once.
pub(crate) fn chunk_rng(seed: u64, index: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ (index as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F))
}

/// The id in `0..n` of popularity rank `rank` (0-based) of a field with salt `salt`:
/// `(rank * 2654435761 + salt) mod n`, so that popular ids are not simply the small ones
/// (a bijection of `0..n` whenever `n` is not a multiple of the prime 2654435761).
pub(crate) fn scatter(rank: u64, salt: u64, n: u64) -> u64 {
    (rank.wrapping_mul(2_654_435_761) + salt) % n
}

/// Makes the `rows` rows in chunks of at most [`ROW_GROUP_ROWS`] rows, `make(index, len)` for
/// chunk `index` of `len` rows, a few chunks at a time in parallel, and hands them to `consume`
/// in order; `progress(rows_done)` is called after each. Memory: a few chunks.
pub(crate) fn in_chunks<T: Send>(
    rows: usize,
    progress: &(dyn Fn(usize) + Sync),
    make: impl Fn(usize, usize) -> T + Sync,
    mut consume: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    let chunks: Vec<(usize, usize)> = (0..rows)
        .step_by(ROW_GROUP_ROWS)
        .map(|s| (s, ROW_GROUP_ROWS.min(rows - s)))
        .collect();
    let parallel = rayon::current_num_threads().max(1) * 2;
    for (g, group) in chunks.chunks(parallel).enumerate() {
        let first = g * parallel;
        let made: Vec<T> = group
            .par_iter()
            .enumerate()
            .map(|(i, &(_, len))| make(first + i, len))
            .collect();
        for (t, &(start, len)) in made.into_iter().zip(group) {
            consume(t)?;
            progress(start + len);
        }
    }
    Ok(())
}
