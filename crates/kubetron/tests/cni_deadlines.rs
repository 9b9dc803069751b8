//! Every CNI verb is bounded (issue 8 #2): the real `kubetron` binary against a real OVN whose
//! Northbound ovsdb-server is SIGSTOPped (it still accepts connections, it answers nothing), and
//! against an Open_vSwitch database that stops answering in the middle of ADD's plug step. Each
//! plugin run is itself bounded by this harness (killed after 60 s, and the test fails), so a hang
//! can never pass.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use support::{CniOutcome, Pod, World};

/// How long the harness lets one plugin run take before killing it and failing.
const HARNESS_BOUND: Duration = Duration::from_secs(60);

/// Runs the plugin in chassis `node`'s netns; kills it and panics after [`HARNESS_BOUND`].
fn cni_bounded(w: &World, node: usize, command: &str, pod: Option<&Pod>, conf: &Value) -> CniOutcome {
    let mut call = w.plugin(node, command).config(conf).timeout(HARNESS_BOUND);
    if let Some(p) = pod {
        call = call.container_id(&p.id).ifname("net1").netns(p.netns_path());
    }
    let o = call.run().unwrap_or_else(|e| panic!("{e}"));
    println!("{command}: returned after {} ms: exit {} {}", o.elapsed.as_millis(), o.exit_code, o.json);
    o
}

/// Continues the NB server when dropped, so a failing assertion never leaves it stopped.
struct Paused<'a>(&'a daemons::OvsdbServer);
impl Drop for Paused<'_> {
    fn drop(&mut self) {
        let _ = self.0.resume();
    }
}

/// The Northbound ovsdb-server is SIGSTOPped (found by its pid file in the test's state dir):
/// ADD returns 11 and STATUS 50, DEL returns, each naming the database; after SIGCONT nothing
/// is left behind, and ADD then works.
#[test]
fn stopped_nb_bounds_add_status_and_del() {
    let w = World::new(1);
    w.network("red", Some("10.61.0.0/24"));
    let pod = Pod::new();
    let mut conf = w.conf("red", 0);
    conf["cniVersion"] = json!("1.1.0");
    // The default timeout_ms (30000) is used; the inactivity probe (5 s) notices the silent
    // server first.
    assert!(conf.get("timeout_ms").is_none());
    let nb_remote = w.central.nb_remote();

    let pid = w.central.nb().pause().expect("SIGSTOP the NB ovsdb-server");
    println!("NB ovsdb-server (pid {pid}) stopped");
    let paused = Paused(w.central.nb());

    let add = cni_bounded(&w, 0, "ADD", Some(&pod), &conf);
    assert_eq!(add.exit_code, 1, "{add:?}");
    assert_eq!(add.json["code"], 11, "{add:?}");
    let msg = add.json["msg"].as_str().unwrap();
    assert!(msg.contains(&nb_remote), "the error names the database it waited for: {msg}");
    println!("ADD with a stopped NB: code 11 after {} ms (timeout_ms 30000)", add.elapsed.as_millis());

    let status = cni_bounded(&w, 0, "STATUS", None, &conf);
    assert_eq!(status.json["code"], 50, "{status:?}");
    assert!(status.json["msg"].as_str().unwrap().contains(&nb_remote), "{status:?}");
    println!("STATUS with a stopped NB: code 50 after {} ms", status.elapsed.as_millis());

    let del = cni_bounded(&w, 0, "DEL", Some(&pod), &conf);
    // DEL removes what is local and reports the unreachable database (the runtime retries).
    assert!(del.exit_code == 0 || del.json["code"] == 11, "{del:?}");
    println!("DEL with a stopped NB: exit {} after {} ms", del.exit_code, del.elapsed.as_millis());

    drop(paused);
    // The server processes what was queued while it was stopped; ADD never got to write.
    w.assert_clean(&[&pod]);
    let status = cni_bounded(&w, 0, "STATUS", None, &conf);
    assert_eq!(status.exit_code, 0, "{status:?}");
    let add = cni_bounded(&w, 0, "ADD", Some(&pod), &conf);
    assert_eq!(add.exit_code, 0, "{add:?}");
    let del = cni_bounded(&w, 0, "DEL", Some(&pod), &conf);
    assert_eq!(del.exit_code, 0, "{del:?}");
    w.assert_clean(&[&pod]);
}

/// A proxy in front of the chassis' Open_vSwitch database that forwards everything except a
/// transaction inserting an `Interface` (the plug step's), which it swallows: the database
/// keeps answering probes and reads but never that write. Only the deadline can end ADD then.
struct Proxy {
    path: PathBuf,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn swallow_interface_inserts(listen: &Path, upstream: &Path) -> Proxy {
    use futures::StreamExt;
    use ovsdb::JsonCodec;
    use tokio::io::AsyncWriteExt;
    use tokio_util::codec::FramedRead;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (listen, upstream) = (listen.to_path_buf(), upstream.to_path_buf());
    let path = listen.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let l = tokio::net::UnixListener::bind(&listen).unwrap();
            ready_tx.send(()).unwrap();
            let serve = async {
                loop {
                    let Ok((client, _)) = l.accept().await else { return };
                    let Ok(server) = tokio::net::UnixStream::connect(&upstream).await else { return };
                    tokio::spawn(async move {
                        let (cr, mut cw) = client.into_split();
                        let (mut sr, mut sw) = server.into_split();
                        let down = tokio::spawn(async move {
                            let _ = tokio::io::copy(&mut sr, &mut cw).await;
                        });
                        // Messages framed by the client's own codec (back-to-back JSON).
                        let mut frames = FramedRead::new(cr, JsonCodec::default());
                        while let Some(Ok(frame)) = frames.next().await {
                            let v: Value = serde_json::from_slice(&frame).unwrap_or(Value::Null);
                            let swallow = v["method"] == "transact"
                                && v["params"]
                                    .as_array()
                                    .is_some_and(|ops| ops.iter().any(|op| op["op"] == "insert" && op["table"] == "Interface"));
                            if swallow {
                                println!("proxy: swallowed {}", &v.to_string()[..80.min(v.to_string().len())]);
                            } else if sw.write_all(&frame).await.is_err() {
                                break;
                            }
                        }
                        down.abort();
                    });
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = stopped => {}
            }
        });
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    Proxy { path, _stop: stop }
}

/// The deadline hits inside ADD's plug step (the logical switch port and the veth exist, the
/// bridge port write is never answered): ADD returns 11 naming the database and the request it
/// waited for, and undoes what it made within the deadline.
#[test]
fn deadline_in_the_plug_step_leaves_nothing() {
    let w = World::new(1);
    w.network("red", Some("10.62.0.0/24"));
    let pod = Pod::new();
    let db = w.chassis[0].db_remote();
    let upstream = PathBuf::from(db.strip_prefix("unix:").expect("unix chassis db"));
    let proxy = swallow_interface_inserts(&w.dir.path().join("ovs-proxy.sock"), &upstream);
    let mut conf = w.conf("red", 0);
    let timeout_ms = 8000;
    conf["timeout_ms"] = json!(timeout_ms);
    conf["port_up_timeout_ms"] = json!(4000);
    conf["ovs_socket"] = json!(format!("unix:{}", proxy.path.display()));

    let add = cni_bounded(&w, 0, "ADD", Some(&pod), &conf);
    assert_eq!(add.json["code"], 11, "{add:?}");
    let msg = add.json["msg"].as_str().unwrap();
    assert!(msg.contains("timeout_ms 8000") && msg.contains("to answer transact"), "{msg}");
    assert!(msg.contains(&proxy.path.display().to_string()), "names the database: {msg}");
    println!("ADD hit its deadline in the plug step after {} ms (timeout_ms {timeout_ms})", add.elapsed.as_millis());
    // The undo ran: the logical switch port and the veth are gone, and no bridge port was made.
    w.assert_clean(&[&pod]);

    // The same config through the real database works (the deadline is not too tight).
    conf["ovs_socket"] = json!(db);
    let add = cni_bounded(&w, 0, "ADD", Some(&pod), &conf);
    assert_eq!(add.exit_code, 0, "{add:?}");
    let del = cni_bounded(&w, 0, "DEL", Some(&pod), &conf);
    assert_eq!(del.exit_code, 0, "{del:?}");
    w.assert_clean(&[&pod]);
}
