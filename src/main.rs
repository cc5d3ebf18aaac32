//! deploy-action's command line (being wired).
fn main() {}
