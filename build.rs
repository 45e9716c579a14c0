//! Records the target triple so `swandog --version` can name what it was built for.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=SWANDOG_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
