//! A small QMP client (qemu's JSON monitor protocol over a unix socket): greeting, `qmp_capabilities`,
//! `execute`, and the events that arrive in between, each stamped with the host clock on arrival.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{epoch_ms, VmError};

/// One connection to a qemu monitor.
pub struct Qmp {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    /// Events received so far: (host epoch ms at arrival, the event object).
    pub events: Vec<(u64, Value)>,
}

impl std::fmt::Debug for Qmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qmp").field("events", &self.events.len()).finish()
    }
}

impl Qmp {
    /// Connects (retrying until the socket accepts, within `bound`), reads the greeting and enters
    /// command mode.
    pub fn connect(path: &Path, bound: Duration) -> Result<Qmp, VmError> {
        let deadline = Instant::now() + bound;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => return Err(VmError::io(format!("connect QMP {}", path.display()), e)),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| VmError::io("QMP read timeout", e))?;
        let reader = BufReader::new(stream.try_clone().map_err(|e| VmError::io("dup QMP socket", e))?);
        let mut q = Qmp { writer: stream, reader, events: Vec::new() };
        let greeting = q.read_msg()?;
        if greeting.get("QMP").is_none() {
            return Err(VmError::Qmp { cmd: "greeting".into(), detail: greeting.to_string() });
        }
        q.execute("qmp_capabilities", None)?;
        Ok(q)
    }

    fn read_msg(&mut self) -> Result<Value, VmError> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).map_err(|e| VmError::io("read QMP", e))?;
        if n == 0 {
            return Err(VmError::Qmp { cmd: "read".into(), detail: "monitor closed the connection".into() });
        }
        serde_json::from_str(&line).map_err(|e| VmError::Qmp { cmd: "read".into(), detail: format!("{e}: {line}") })
    }

    /// Runs `cmd` with optional `arguments` and returns its `return` value; events read meanwhile are kept.
    pub fn execute(&mut self, cmd: &str, args: Option<Value>) -> Result<Value, VmError> {
        let mut m = json!({ "execute": cmd });
        if let Some(a) = args {
            m["arguments"] = a;
        }
        let mut s = m.to_string();
        s.push('\n');
        self.writer.write_all(s.as_bytes()).map_err(|e| VmError::io(format!("send QMP {cmd}"), e))?;
        loop {
            let r = self.read_msg()?;
            if r.get("event").is_some() {
                self.events.push((epoch_ms(), r));
                continue;
            }
            if let Some(e) = r.get("error") {
                return Err(VmError::Qmp { cmd: cmd.into(), detail: e.to_string() });
            }
            if let Some(v) = r.get("return") {
                return Ok(v.clone());
            }
        }
    }

    /// Waits (within `bound`) for an event named `name`, returning the first one received (also one
    /// already buffered).
    pub fn wait_event(&mut self, name: &str, bound: Duration) -> Result<Value, VmError> {
        let deadline = Instant::now() + bound;
        loop {
            if let Some((_, e)) = self.events.iter().find(|(_, e)| e["event"] == name) {
                return Ok(e.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(VmError::Timeout { what: format!("QMP event {name}"), after: bound, context: String::new() });
            }
            self.writer.set_read_timeout(Some(left)).map_err(|e| VmError::io("QMP read timeout", e))?;
            let r = self.read_msg();
            self.writer.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| VmError::io("QMP read timeout", e))?;
            match r {
                Ok(v) if v.get("event").is_some() => self.events.push((epoch_ms(), v)),
                Ok(_) => {}
                Err(VmError::Io { source, .. })
                    if matches!(source.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// qemu's own timestamp of an event, in epoch ms.
pub(crate) fn event_ms(e: &Value) -> Option<u64> {
    let t = e.get("timestamp")?;
    Some(t["seconds"].as_u64()? * 1000 + t["microseconds"].as_u64()? / 1000)
}
