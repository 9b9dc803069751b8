//! Every typed model must match the schema installed on this machine (the one the real daemons use).

use ovn::columns::{ColumnSpec, Model};
use ovn::{nb, vswitch};
use ovsdb::schema::DatabaseSchema;

fn check<M: Model>(schema: &DatabaseSchema) -> Vec<String> {
    let mut problems = Vec::new();
    let table = match schema.table(M::TABLE) {
        Ok(t) => t,
        Err(e) => return vec![format!("{}: {e}", M::TABLE)],
    };
    for ColumnSpec { name, kind } in M::COLUMNS {
        match table.column_type(name) {
            None => problems.push(format!("{}.{name}: no such column", M::TABLE)),
            Some(ty) => {
                if let Err(e) = kind.matches(ty) {
                    problems.push(format!("{}.{name}: {e}", M::TABLE));
                }
            }
        }
    }
    problems
}

#[test]
fn northbound_models_match_installed_schema() {
    let schema = DatabaseSchema::from_file("/usr/share/ovn/ovn-nb.ovsschema").expect("read NB schema");
    assert_eq!(schema.name, nb::DB);
    let mut problems = Vec::new();
    problems.extend(check::<nb::NbGlobal>(&schema));
    problems.extend(check::<nb::LogicalSwitch>(&schema));
    problems.extend(check::<nb::LogicalSwitchPort>(&schema));
    problems.extend(check::<nb::DhcpOptions>(&schema));
    problems.extend(check::<nb::Acl>(&schema));
    problems.extend(check::<nb::PortGroup>(&schema));
    problems.extend(check::<nb::AddressSet>(&schema));
    problems.extend(check::<nb::LogicalRouter>(&schema));
    problems.extend(check::<nb::LogicalRouterPort>(&schema));
    problems.extend(check::<nb::LoadBalancer>(&schema));
    assert!(problems.is_empty(), "models drifted from the schema:\n{}", problems.join("\n"));
}

#[test]
fn vswitch_models_match_installed_schema() {
    let schema = DatabaseSchema::from_file("/usr/share/openvswitch/vswitch.ovsschema").expect("read vswitch schema");
    assert_eq!(schema.name, vswitch::DB);
    let mut problems = Vec::new();
    problems.extend(check::<vswitch::OpenVSwitch>(&schema));
    problems.extend(check::<vswitch::Bridge>(&schema));
    problems.extend(check::<vswitch::Port>(&schema));
    problems.extend(check::<vswitch::Interface>(&schema));
    assert!(problems.is_empty(), "models drifted from the schema:\n{}", problems.join("\n"));
}

#[test]
fn a_wrong_model_is_caught() {
    // The checker itself must be able to fail: a column kind that does not match.
    let schema = DatabaseSchema::from_file("/usr/share/ovn/ovn-nb.ovsschema").unwrap();
    let ty = schema.table("Logical_Switch_Port").unwrap().column_type("addresses").unwrap();
    assert!(ovn::ColumnKind::String.matches(ty).is_err());
    assert!(ovn::ColumnKind::StringSet.matches(ty).is_ok());
    let ty = schema.table("Logical_Switch").unwrap().column_type("ports").unwrap();
    assert!(ovn::ColumnKind::RefSet("ACL").matches(ty).is_err());
}
