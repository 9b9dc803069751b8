//! `kubetron-cni`: the CNI binary of cluster and chained modes, installed as `/opt/cni/bin/kubetron`.
//! It only forwards each call to the node agent ([`cni::shim::Shim`]); a `standalone` config needs
//! the `kubetron` binary as the plugin instead (code 7).

fn main() {
    std::process::exit(cni::run_process(&cni::shim::Shim))
}
