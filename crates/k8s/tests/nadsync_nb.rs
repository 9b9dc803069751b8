//! The NAD sync's reading of OVN against a real Northbound database: switches marked with
//! `kubetron.io/namespaces` (made with ovn-nbctl, as an administrator would) become desired NADs;
//! unmarked switches do not; a localnet port makes a physical network with its resource name.

mod controller_support;

use controller_support::Ovn;
use k8s::controller::Nb;
use k8s::nadsync::{desired_nads, marked_switches, SyncSettings, Targets};

#[test]
fn marked_switches_from_a_real_northbound() {
    let ovn = Ovn::start();
    ovn.nbctl(&["ls-add", "plain"]);
    ovn.nbctl(&[
        "ls-add",
        "Tenant_Red",
        "--",
        "set",
        "Logical_Switch",
        "Tenant_Red",
        "external_ids:kubetron.io/namespaces=\"team-a, team-b\"",
    ]);
    ovn.nbctl(&[
        "ls-add",
        "phys",
        "--",
        "set",
        "Logical_Switch",
        "phys",
        "external_ids:kubetron.io/namespaces=*",
        "external_ids:kubetron.io/nad-name=uplink",
    ]);
    ovn.nbctl(&[
        "lsp-add",
        "phys",
        "phys-ln",
        "",
        "100",
        "--",
        "lsp-set-type",
        "phys-ln",
        "localnet",
        "--",
        "lsp-set-options",
        "phys-ln",
        "network_name=physnet1",
    ]);
    // A localnet port on an unmarked switch changes nothing.
    ovn.nbctl(&[
        "lsp-add",
        "plain",
        "plain-ln",
        "--",
        "lsp-set-type",
        "plain-ln",
        "localnet",
        "--",
        "lsp-set-options",
        "plain-ln",
        "network_name=other",
    ]);
    // A VIF port on the marked switch is not a localnet port.
    ovn.nbctl(&["lsp-add", "Tenant_Red", "vif1"]);

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = ovsdb::Client::connect_to(&ovn.central.nb_remote()).await.unwrap();
        let nb = Nb::start(client).await.unwrap();
        let marked = marked_switches(&nb.view());
        assert_eq!(marked.len(), 2, "{marked:?}");
        let red = &marked[0]; // sorted by switch name: upper case first
        assert_eq!((red.switch.as_str(), red.nad_name.as_str()), ("Tenant_Red", "tenant-red"));
        assert_eq!(red.targets, Targets::Some(["team-a".to_string(), "team-b".to_string()].into()));
        assert_eq!((red.physnet.as_deref(), red.vlan), (None, None));
        let phys = &marked[1];
        assert_eq!((phys.switch.as_str(), phys.nad_name.as_str()), ("phys", "uplink"));
        assert_eq!(phys.targets, Targets::All);
        assert_eq!((phys.physnet.as_deref(), phys.vlan), (Some("physnet1"), Some(100)));

        let nads = desired_nads(&marked, &["default".to_string()], &SyncSettings::new());
        let ids: Vec<String> =
            nads.iter().map(|n| format!("{}/{}", n.metadata.namespace.as_deref().unwrap(), n.metadata.name.as_deref().unwrap())).collect();
        assert_eq!(ids, ["default/uplink", "team-a/tenant-red", "team-b/tenant-red"]);
        assert_eq!(nads[0].physical_network(), Some("physnet1"));
        let red_cfg = nads[1].kubetron_config().unwrap().unwrap();
        assert_eq!(red_cfg.logical_switch(), "Tenant_Red");
        assert!(red_cfg.kubetron.nb.is_none(), "cluster mode: no NB address for the nodes: {}", nads[1].spec.config);

        // Unmarking is seen through the replica.
        ovn.nbctl(&["remove", "Logical_Switch", "Tenant_Red", "external_ids", "kubetron.io/namespaces"]);
        let snap = nb
            .replica()
            .wait_until(std::time::Duration::from_secs(10), |s| marked_switches(&k8s::controller::NbView(s.clone())).len() == 1)
            .await;
        assert!(snap.is_ok(), "unmarking not seen");
    });
}
