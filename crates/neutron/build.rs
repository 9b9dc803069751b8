//! Sets `cfg(neutron_tests)` when `KUBETRON_NEUTRON_TESTS=1`: the tests against a real
//! neutron-server (and Keystone) are `#[ignore]`d (and so counted as ignored in the test summary)
//! without it.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(neutron_tests)");
    println!("cargo::rerun-if-env-changed=KUBETRON_NEUTRON_TESTS");
    if std::env::var("KUBETRON_NEUTRON_TESTS").as_deref() == Ok("1") {
        println!("cargo::rustc-cfg=neutron_tests");
    }
}
