//! `ovsdb`: a client for the Open vSwitch Database Management Protocol (RFC 7047).
//!
//! Owns: the JSON-RPC 1.0 wire codec, OVSDB datum encoding, schema parsing and checking, the
//! connection (unix, TCP, SSL), transactions, monitors, the client-side replica, reconnect and
//! clustered-database leader handling.
//!
//! Must not touch: anything OVN- or Kubernetes-specific; table names appear only in tests.
//!
//! Layout: [`codec`] (framing of back-to-back JSON), [`jsonrpc`] (message classification),
//! [`datum`] (atoms, datums, rows), [`schema`] (schemas and checks), [`ops`] (transaction
//! operations), [`client`] (connection task, requests, reconnect), [`monitor`] (monitors and
//! update decoding), [`replica`] (client-side replica with indexes), [`cluster`] (`_Server`
//! leader checks), [`tls`] (rustls setup).
//!
//! Behaviour in brief:
//! - [`Client`] is cheap to clone; one task owns the socket (unix, TCP or SSL via rustls),
//!   answers the server's `echo`, sends its own after `inactivity_probe` (default 5 s, as
//!   ovsdb-server and ovn-controller) of silence and drops the connection when nothing arrives
//!   for as long again (or when sending stalls for twice that), and matches replies by id. A
//!   request in flight when the connection drops fails with [`Error::Disconnected`] and is never
//!   re-sent; requests made while disconnected wait for the next connection. With
//!   [`ClientConfig::request_timeout`] every request is bounded ([`Error::RequestTimeout`]);
//!   [`Client::in_flight`] lists the requests still waiting. Every connection error names the
//!   remote it failed on; after the connection task ended (reconnecting disabled), requests fail
//!   at once with [`Error::Closed`] naming it and why.
//! - [`Client::transact`] normalizes and checks every value against the schema (types, enums,
//!   integer/real ranges, string lengths, set sizes, map key/value types, reference types) before
//!   sending, failing with [`Error::Check`] naming table, column and value; server-side failures
//!   become [`Error::Transaction`] with the server's `error` and `details`.
//! - `update`, `mutate` and `delete` take their `where` as a [`Where`], which has no empty
//!   constructor: every row is [`Where::every_row`], said explicitly. A `where` restricting nothing
//!   otherwise (only `true` constants) is refused before sending with [`Error::UnboundedWhere`],
//!   by `transact` and `transact_unchecked` alike.
//! - Monitors survive reconnects: `monitor_cond_since` resumes from the last transaction id when
//!   the server still has it (clustered databases), else the monitor restarts with a
//!   [`MonitorEvent::Reset`].
//! - With [`ClientConfig::database`], each connection first reads `_Server.Database`; cluster
//!   members that are disconnected, behind, or (with `leader_only`) not the leader are skipped,
//!   and a leadership change moves the client to another remote.
//! - [`Replica`] keeps persistent-map snapshots ([`Snapshot`], O(1) clone) with indexes and a
//!   watch channel ([`Replica::subscribe`], [`Replica::wait_until`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), ovsdb::Error> {
//! use ovsdb::{Client, ClientConfig, Operation, Datum, Mutation, Where};
//! let client = Client::connect(ClientConfig::new("unix:/run/ovn/ovnnb_db.sock")?.database("OVN_Northbound")).await?;
//! let r = client.transact("OVN_Northbound", vec![
//!     Operation::insert("Logical_Switch").set("name", "ls1").uuid_name("ls"),
//!     Operation::insert("Logical_Switch_Port").set("name", "p1").uuid_name("p"),
//!     Operation::mutate("Logical_Switch", Where::eq("_uuid", Datum::named_uuid("ls")))
//!         .mutation(Mutation::insert("ports", Datum::named_uuid("p"))),
//! ]).await?;
//! # Ok(()) }
//! ```

pub mod client;
pub mod cluster;
pub mod codec;
pub mod datum;
pub mod error;
mod fold;
pub mod jsonrpc;
pub mod monitor;
pub mod ops;
pub mod replica;
pub mod schema;
pub mod tls;

pub use client::{Client, ClientConfig, ConnectionState, InFlight, LockEvent, Remote};
pub use cluster::ServerDatabase;
pub use codec::JsonCodec;
pub use datum::{Atom, Datum, Row, Uuid};
pub use error::{CheckError, CodecError, Error, Result, TxnError};
pub use monitor::{Monitor, MonitorEvent, MonitorMethod, MonitorRequest, MonitorTable, RowUpdate, TableUpdate, TableUpdates};
pub use ops::{Condition, Function, Mutation, OpResult, Operation, WaitUntil, Where};
pub use replica::{IndexSpec, Replica, ReplicaConfig, Snapshot, TableData};
pub use schema::{AtomicType, BaseType, ColumnSchema, ColumnType, DatabaseSchema, TableSchema};
pub use tls::TlsConfig;

#[cfg(test)]
mod api_tests {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn handles_are_send_and_sync() {
        send_sync::<crate::Client>();
        send_sync::<crate::Replica>();
        send_sync::<crate::Snapshot>();
        send_sync::<crate::Error>();
        send_sync::<crate::DatabaseSchema>();
        send::<crate::Monitor>();
    }
}
