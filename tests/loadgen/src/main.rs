//! `ferrosfu-loadgen`: see the library crate and DESIGN-NOTES.md.

fn main() -> anyhow::Result<()> {
    ferrosfu_loadgen::main()
}
