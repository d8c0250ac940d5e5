//! The commit this supervisor is built from, for `ferrosfu_build_info{commit}`: `FERROSFU_COMMIT`
//! when the packager sets it, else `git rev-parse` of the checkout, else "unknown" (a source
//! tarball).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=FERROSFU_COMMIT");
    let commit = std::env::var("FERROSFU_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=FERROSFU_COMMIT={commit}");
}

/// The short commit of HEAD; re-run when HEAD or the branch it names moves.
fn git_commit() -> Option<String> {
    let git_dir = run(&["rev-parse", "--absolute-git-dir"])?;
    println!("cargo:rerun-if-changed={git_dir}/HEAD");
    if let Some(branch) = run(&["symbolic-ref", "-q", "HEAD"]) {
        println!("cargo:rerun-if-changed={git_dir}/{branch}");
        // Only when it exists: cargo treats a missing watched file as always changed.
        let packed = format!("{git_dir}/packed-refs");
        if std::path::Path::new(&packed).exists() {
            println!("cargo:rerun-if-changed={packed}");
        }
    }
    run(&["rev-parse", "--short=12", "HEAD"])
}

fn run(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !s.is_empty()).then_some(s)
}
