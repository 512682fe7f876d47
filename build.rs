//! Rebuild when a migration is added or `sqlx.toml` changes: `sqlx::migrate!()` embeds them
//! at compile time but cannot tell cargo about new files.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=sqlx.toml");
}
