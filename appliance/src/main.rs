fn main() {
    println!("portcullis {}", env!("CARGO_PKG_VERSION"));
}
