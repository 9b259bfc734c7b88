//! Criterion micro-benchmarks of authd, in `benches/`: token signing and verification
//! (`tokens`), Argon2 at its production cost (`password`) and the main use cases on the
//! in-memory adapters (`use_cases`). Run with `cargo bench -p microbench`.
