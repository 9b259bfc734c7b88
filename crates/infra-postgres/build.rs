//! `embed_migrations!` reads the migrations folder at compile time, but cargo does not know
//! that: without this, a newly added migration is missing from an incremental build.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
