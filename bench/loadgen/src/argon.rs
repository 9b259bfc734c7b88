//! The login bound: how many Argon2id hashes one core makes per second at the server's
//! parameters. A login costs one hash, so a one-core server cannot log in users faster.

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};

/// Hashes per second on this thread over at least `window` (and at least three hashes).
pub fn hashes_per_second(
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    window: Duration,
) -> anyhow::Result<f64> {
    let params = Params::new(memory_kib, iterations, parallelism, Some(32))
        .map_err(|error| anyhow::anyhow!("Argon2 parameters: {error}"))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = *b"a-fixed-16B-salt";
    let mut output = [0u8; 32];
    let mut hash = |n: u8| {
        argon2
            .hash_password_into(&[b'p', n], &salt, &mut output)
            .map_err(|error| anyhow::anyhow!("Argon2: {error}"))
    };
    hash(0)?; // Touch the memory once so the first measured hash is not a page-fault outlier.
    let started = Instant::now();
    let mut hashes = 0u32;
    while hashes < 3 || started.elapsed() < window {
        hash(hashes as u8)?;
        hashes += 1;
    }
    Ok(f64::from(hashes) / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cheap_parameters_hash_faster_than_costly_ones() {
        let window = Duration::from_millis(50);
        let cheap = hashes_per_second(64, 1, 1, window).unwrap();
        let costly = hashes_per_second(8192, 3, 1, window).unwrap();
        assert!(cheap > costly, "{cheap} vs {costly}");
    }

    #[test]
    fn invalid_parameters_are_an_error() {
        assert!(hashes_per_second(1, 1, 1, Duration::ZERO).is_err());
    }
}
