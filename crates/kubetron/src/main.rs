//! The `kubetron` binary: thin subcommands around the library crates. Invoked with `CNI_COMMAND`
//! set, it acts as the CNI plugin.
fn main() {}
