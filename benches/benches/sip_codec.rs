//! Benchmark placeholder, replaced by the owner of this benchmark.
fn main() {}
