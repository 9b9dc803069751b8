//! What ADD made so far, undone in reverse order when a later step fails, so that a failed ADD
//! leaves no logical switch port, veth or bridge port behind.

use ovsdb::datum::Uuid;
use ovsdb::Client;

use crate::port;
use cni::plumb;

#[derive(Debug)]
enum Step {
    LogicalPort(Uuid),
    Veth(String),
    BridgePort(Uuid),
}

/// The undo log of one ADD.
#[derive(Debug, Default)]
pub struct Undo {
    steps: Vec<Step>,
}

impl Undo {
    pub fn logical_port(&mut self, uuid: Uuid) {
        self.steps.push(Step::LogicalPort(uuid));
    }
    pub fn veth(&mut self, host_if: &str) {
        self.steps.push(Step::Veth(host_if.to_string()));
    }
    pub fn bridge_port(&mut self, uuid: Uuid) {
        self.steps.push(Step::BridgePort(uuid));
    }

    /// Undoes every step, newest first; failures are logged, not returned (the original error
    /// is the one the runtime must see).
    pub async fn run(self, nb: &Client, ovs: &Client) {
        for step in self.steps.into_iter().rev() {
            let r = match &step {
                Step::BridgePort(u) => plumb::unplug(ovs, *u).await,
                Step::Veth(name) => plumb::delete_veth(None, name).map(|_| ()),
                Step::LogicalPort(u) => port::delete_port(nb, *u).await,
            };
            if let Err(e) = r {
                tracing::warn!("undoing {step:?} after a failed ADD: {}", e.msg);
            }
        }
    }
}
