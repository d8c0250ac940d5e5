//! `ferrosfu-loadgen`: see DESIGN-NOTES.md (skeleton; being built).

mod types;

fn main() {
    let _ = std::mem::size_of::<types::Results>();
}
