//! Sets `cfg(kube_tests)` when `KUBETRON_KUBE_TESTS=1`: the tests that need a real kube-apiserver
//! are `#[ignore]`d (and so counted as ignored in the test summary) without it.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(kube_tests)");
    println!("cargo::rerun-if-env-changed=KUBETRON_KUBE_TESTS");
    if std::env::var("KUBETRON_KUBE_TESTS").as_deref() == Ok("1") {
        println!("cargo::rustc-cfg=kube_tests");
    }
}
