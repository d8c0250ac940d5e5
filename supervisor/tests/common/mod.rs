//! Shared by the supervisor's integration tests.

/// A fresh working directory for one supervisor under test (its default `data/` store and
/// `recordings/` land there, not in the source tree).
pub(crate) fn workdir(tag: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "ferrosfu-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).expect("create a work dir");
    d
}
