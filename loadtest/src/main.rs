fn main() {
    println!("portcullis-loadtest {}", env!("CARGO_PKG_VERSION"));
}
