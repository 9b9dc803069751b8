//! Cluster mode's promise, checked on the source: no node touches the Northbound database. The
//! crates that run on a node in cluster mode (`cni`: the shim and the node-side plumbing; `node`:
//! the agent) neither name the Northbound database or `ovn::nb` nor depend on `standalone` (the
//! direct path, the only CNI code that writes there).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn node_side_crates_have_no_northbound_code() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let mut checked = 0;
    for krate in ["cni", "node"] {
        let mut files = Vec::new();
        rust_files(&crates.join(krate).join("src"), &mut files);
        assert!(files.len() > 3, "{krate}: no sources found under {}", crates.display());
        for f in files {
            let src = std::fs::read_to_string(&f).unwrap();
            for (i, line) in src.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for needle in ["ovn::nb", "OVN_Northbound", "standalone::"] {
                    assert!(!code.contains(needle), "{}:{}: names {needle}: {line}", f.display(), i + 1);
                }
            }
            checked += 1;
        }
        let manifest = std::fs::read_to_string(crates.join(krate).join("Cargo.toml")).unwrap();
        assert!(!manifest.lines().any(|l| l.trim_start().starts_with("standalone")), "{krate} depends on standalone");
    }
    assert!(checked > 10);
}
