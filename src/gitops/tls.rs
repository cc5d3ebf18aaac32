//! libgit2's CA bundle, loaded only when a remote is https.
//!
//! libgit2 starts OpenSSL at its first use and has it parse the whole CA bundle named by
//! `SSL_CERT_FILE` there and then: about 45 ms of CPU in every job, though git://, ssh and
//! file remotes never use it. When 32 jobs start on one runner's two cores that is a second
//! before the first push of a race. So [`start`] lets libgit2 start with an empty bundle, and
//! [`trust_bundle_for`] loads the real one when a remote is https. `SSL_CERT_DIR` lookups are
//! lazy and stay as they were.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The bundle libgit2 would have loaded at its start; set only when [`start`] deferred it.
static DEFERRED: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Starts libgit2 without parsing the CA bundle. Call it first thing in `main`: it sets an
/// environment variable, which is sound only while no other thread runs.
pub fn start() {
    let bundle = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .or_else(|| openssl_probe::probe().cert_file);
    // SAFETY: `main` calls this before it starts any thread.
    unsafe { std::env::set_var("SSL_CERT_FILE", "/dev/null") };
    super::init_libgit2();
    // The environment is left as libgit2's own start would have left it, for anything else
    // that reads it (git2 probes the bundle into SSL_CERT_FILE too).
    match &bundle {
        // SAFETY: as above.
        Some(path) => unsafe { std::env::set_var("SSL_CERT_FILE", path) },
        None => unsafe { std::env::remove_var("SSL_CERT_FILE") },
    }
    let _ = DEFERRED.set(bundle);
}

/// Before the first connection to `url`: if it is https and [`start`] deferred the bundle,
/// loads it into libgit2 (once per process).
pub(crate) fn trust_bundle_for(url: &str) {
    static LOADED: std::sync::Once = std::sync::Once::new();
    if !url.starts_with("https://") {
        return;
    }
    let Some(Some(bundle)) = DEFERRED.get() else {
        return;
    };
    LOADED.call_once(|| {
        // SAFETY: libgit2's global TLS settings; git work in this process runs on one thread
        // at a time, and this runs before that work connects.
        if let Err(e) = unsafe { git2::opts::set_ssl_cert_file(bundle) } {
            // Connecting will then fail with an untrusted certificate, whose hint names
            // SSL_CERT_FILE; say why the bundle is missing.
            println!(
                "cannot load the CA bundle {}: {}",
                bundle.display(),
                e.message()
            );
        }
    });
}
