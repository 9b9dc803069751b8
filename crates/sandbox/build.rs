//! Sets `cfg(kube_tests)` when `KUBETRON_KUBE_TESTS=1`, `cfg(cluster_tests)` when
//! `KUBETRON_CLUSTER_TESTS=1` and `cfg(neutron_tests)` when `KUBETRON_NEUTRON_TESTS=1`: the tests that need a real kube-apiserver (or a whole real cluster:
//! kubelet, containerd, the images) are `#[ignore]`d (and so counted as ignored in the test summary)
//! without them.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(kube_tests)");
    println!("cargo::rustc-check-cfg=cfg(cluster_tests)");
    println!("cargo::rerun-if-env-changed=KUBETRON_KUBE_TESTS");
    println!("cargo::rerun-if-env-changed=KUBETRON_CLUSTER_TESTS");
    println!("cargo::rustc-check-cfg=cfg(neutron_tests)");
    println!("cargo::rerun-if-env-changed=KUBETRON_NEUTRON_TESTS");
    if std::env::var("KUBETRON_NEUTRON_TESTS").as_deref() == Ok("1") {
        println!("cargo::rustc-cfg=neutron_tests");
    }
    if std::env::var("KUBETRON_KUBE_TESTS").as_deref() == Ok("1") {
        println!("cargo::rustc-cfg=kube_tests");
    }
    if std::env::var("KUBETRON_CLUSTER_TESTS").as_deref() == Ok("1") {
        println!("cargo::rustc-cfg=cluster_tests");
    }
}
