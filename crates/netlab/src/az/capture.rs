//! `az network watcher packet-capture …` and `az storage blob …` in the lab.
//!
//! A capture is `tcpdump` on the VM's eth0, started in the VM namespace under `timeout`
//! (the time limit), recorded as a lab process (so `down` stops it) and in
//! `{run_dir}/az/captures.json`. When the capture stops (`stop`, or the time limit / byte
//! limit noticed by the next packet-capture or blob command), the pcap is stored as a blob
//! of the lab storage account through the blob data directory, as Network Watcher uploads
//! it to the storage account.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::args::Parsed;
use super::cmds::Ctx;
use super::{shapes, AzError};
use crate::blobd::store::Store;
use crate::sys::{self, ProcRecord};

type Out = Result<Option<Value>, AzError>;

/// One packet capture session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capture {
    /// Name.
    pub name: String,
    /// VM.
    pub vm: String,
    /// Storage account.
    pub account: String,
    /// Container.
    pub container: String,
    /// Blob name.
    pub blob: String,
    /// Local pcap while capturing.
    pub file: String,
    /// Seconds.
    pub time_limit: u64,
    /// Snap length (0 = whole packets).
    pub bytes_per_packet: u64,
    /// Byte limit of the session.
    pub total_bytes: u64,
    /// Azure filters as given.
    pub filters: Value,
    /// The tcpdump process.
    pub proc: Option<ProcRecord>,
    /// RFC 3339.
    pub started: String,
    /// `Running`, `Stopped`.
    pub status: String,
    /// `Manual`, `TimeExceeded`, `SessionMaximumBytesLimitExceeded`, `Error`.
    pub stop_reason: Option<String>,
    /// Why the upload failed, if it did.
    pub error: Option<String>,
}

fn state_path(c: &Ctx) -> PathBuf {
    c.lab.run_dir().join("az").join("captures.json")
}

fn load(c: &Ctx) -> Vec<Capture> {
    std::fs::read_to_string(state_path(c))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn save(c: &Ctx, v: &[Capture]) -> Result<(), AzError> {
    let p = state_path(c);
    std::fs::create_dir_all(p.parent().expect("has parent"))
        .map_err(|e| AzError::Failed(format!("cannot create {}: {e}", p.display())))?;
    crate::lab::write_atomic(
        &p,
        serde_json::to_string_pretty(v)
            .unwrap_or_default()
            .as_bytes(),
    )
    .map_err(AzError::from)
}

fn store(c: &Ctx) -> Result<Store, AzError> {
    Store::new(&c.lab.run_dir().join("blobdata"))
        .map_err(|e| AzError::Failed(format!("cannot open the lab blob store: {e}")))
}

/// Translates Azure's capture filters into a BPF expression (filters are OR'ed, the fields
/// of one filter AND'ed; local and remote addresses/ports both become `host`/`port`, since
/// the VM side of a packet depends on its direction).
pub fn bpf_from_filters(filters: &Value) -> Result<String, AzError> {
    let Some(list) = filters.as_array() else {
        return Ok(String::new());
    };
    let bad = |m: String| AzError::Failed(format!("(InvalidPacketCaptureFilter) {m}"));
    let mut alts = Vec::new();
    for f in list {
        let mut parts = Vec::new();
        match f
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("Any")
            .to_ascii_uppercase()
            .as_str()
        {
            "TCP" => parts.push("tcp".to_string()),
            "UDP" => parts.push("udp".to_string()),
            "ANY" => {}
            other => return Err(bad(format!("protocol '{other}' is not TCP, UDP or Any"))),
        }
        for (key, word) in [
            ("localIPAddress", "host"),
            ("remoteIPAddress", "host"),
            ("localPort", "port"),
            ("remotePort", "port"),
        ] {
            let Some(v) = f.get(key).and_then(Value::as_str) else {
                continue;
            };
            let mut ors = Vec::new();
            for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let ok = |s: &str| {
                    if word == "host" {
                        s.parse::<std::net::Ipv4Addr>().is_ok()
                    } else {
                        s.parse::<u16>().is_ok()
                    }
                };
                match item.split_once('-') {
                    Some((a, b)) if ok(a) && ok(b) => ors.push(if word == "host" {
                        return Err(bad(format!(
                            "{key} ranges are not supported by netlab: {item}"
                        )));
                    } else {
                        format!("portrange {a}-{b}")
                    }),
                    None if ok(item) => ors.push(format!("{word} {item}")),
                    _ => return Err(bad(format!("{key} value '{item}' is not valid"))),
                }
            }
            if !ors.is_empty() {
                parts.push(format!("({})", ors.join(" or ")));
            }
        }
        if parts.is_empty() {
            return Ok(String::new());
        }
        alts.push(format!("({})", parts.join(" and ")));
    }
    Ok(alts.join(" or "))
}

/// Drops a stopped capture's process from the lab's process list (it is gone).
fn forget_proc(c: &mut Ctx, cap: &Capture) {
    if let Some(p) = &cap.proc {
        let before = c.lab.st.processes.len();
        c.lab
            .st
            .processes
            .retain(|x| !(x.pid == p.pid && x.start_time == p.start_time));
        if c.lab.st.processes.len() != before {
            let _ = c.lab.save();
        }
    }
}

/// Stops captures whose time or byte limit is reached and uploads finished ones.
fn settle(c: &mut Ctx, v: &mut [Capture]) {
    let st = store(c).ok();
    for cap in v.iter_mut() {
        if cap.status != "Running" {
            continue;
        }
        let alive = cap.proc.as_ref().is_some_and(sys::is_alive);
        let size = std::fs::metadata(&cap.file).map(|m| m.len()).unwrap_or(0);
        if alive && size >= cap.total_bytes {
            if let Some(p) = &cap.proc {
                sys::stop(p, std::time::Duration::from_secs(2));
            }
            finish(cap, st.as_ref(), "SessionMaximumBytesLimitExceeded");
            forget_proc(c, cap);
        } else if !alive {
            finish(cap, st.as_ref(), "TimeExceeded");
            forget_proc(c, cap);
        }
    }
}

fn finish(cap: &mut Capture, st: Option<&Store>, reason: &str) {
    cap.status = "Stopped".into();
    cap.stop_reason = Some(reason.into());
    let res = match (st, std::fs::File::open(&cap.file)) {
        (Some(s), Ok(mut f)) => s
            .create_container(&cap.account, &cap.container)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                s.put_blob(&cap.account, &cap.container, &cap.blob, &mut f, None)
                    .map_err(|e| e.to_string())
            })
            .map(|_| ()),
        (None, _) => Err("the lab blob store cannot be opened".into()),
        (_, Err(e)) => Err(format!("the capture file {} is missing: {e}", cap.file)),
    };
    match res {
        Ok(()) => {
            let _ = std::fs::remove_file(&cap.file);
        }
        Err(e) => {
            cap.stop_reason = Some("Error".into());
            cap.error = Some(e);
        }
    }
}

fn watcher_id(c: &Ctx, location: &str) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/NetworkWatcherRG/providers/Microsoft.Network/networkWatchers/NetworkWatcher_{location}",
        c.lab.topology().subscription_id
    )
}

fn capture_json(c: &Ctx, cap: &Capture) -> Value {
    let t = c.lab.topology();
    json!({
        "bytesToCapturePerPacket": cap.bytes_per_packet,
        "etag": format!("W/\"{}\"", cap.started),
        "filters": cap.filters,
        "id": format!("{}/packetCaptures/{}", watcher_id(c, &t.location), cap.name),
        "name": cap.name,
        "provisioningState": "Succeeded",
        "resourceGroup": "NetworkWatcherRG",
        "storageLocation": {
            "filePath": null,
            "storageId": shapes::sa_id(t, &cap.account),
            "storagePath": format!("http://{}/{}/{}/{}", crate::lab::STORAGE_IP, cap.account, cap.container, cap.blob),
        },
        "target": shapes::vm_id(t, &cap.vm),
        "targetType": "AzureVM",
        "timeLimitInSeconds": cap.time_limit,
        "totalBytesPerSession": cap.total_bytes,
    })
}

fn check_location(c: &Ctx, p: &Parsed) -> Result<(), AzError> {
    let l = p.req("--location");
    if !l.eq_ignore_ascii_case(&c.lab.topology().location) {
        return Err(AzError::Failed(format!(
            "network watcher not found in '{l}' (the lab's location is '{}')",
            c.lab.topology().location
        )));
    }
    Ok(())
}

fn find<'a>(c: &Ctx, v: &'a mut [Capture], name: &str) -> Result<&'a mut Capture, AzError> {
    let loc = c.lab.topology().location.clone();
    let id = format!("{}/packetCaptures/{name}", watcher_id(c, &loc));
    v.iter_mut()
        .find(|x| x.name.eq_ignore_ascii_case(name))
        .ok_or(AzError::NotFound {
            code: "NotFound".into(),
            message: format!("Resource {id} not found."),
        })
}

fn num(p: &Parsed, opt: &str, default: u64) -> Result<u64, AzError> {
    match p.get(opt) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| AzError::Usage(format!("argument {opt}: invalid int value: '{v}'"))),
    }
}

/// `packet-capture create`.
pub fn pc_create(c: &mut Ctx, p: &Parsed) -> Out {
    let rg = p.req("--resource-group");
    if !rg.eq_ignore_ascii_case(&c.lab.topology().resource_group) {
        return Err(AzError::NotFound {
            code: "ResourceGroupNotFound".into(),
            message: format!("Resource group '{rg}' could not be found."),
        });
    }
    let vm_name = super::args_last_segment(p.req("--vm")).to_string();
    let t = c.lab.topology().clone();
    let vm = t
        .vms
        .iter()
        .find(|v| v.name.eq_ignore_ascii_case(&vm_name))
        .cloned()
        .ok_or_else(|| AzError::NotFound {
            code: "ResourceNotFound".into(),
            message: format!("The Resource 'Microsoft.Compute/virtualMachines/{vm_name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"),
        })?;
    let name = p.req("--name").to_string();
    let mut all = load(c);
    settle(c, &mut all);
    if all.iter().any(|x| x.name.eq_ignore_ascii_case(&name)) {
        return Err(AzError::Failed(format!(
            "(PacketCaptureAlreadyExists) A packet capture named {name} already exists; delete it first."
        )));
    }
    if let Some(other) = all
        .iter()
        .find(|x| x.vm == vm.name && x.status == "Running")
    {
        return Err(AzError::Failed(format!(
            "(AnotherOperationInProgress) Another packet capture session ({}) is already running on the virtual machine {}. Stop it or wait until it finishes.",
            other.name, vm.name
        )));
    }
    let account = match p.get("--storage-account") {
        Some(a) => super::args_last_segment(a).to_string(),
        None => {
            return Err(AzError::Failed(
                "netlab captures land in the lab storage account: give --storage-account (local --file-path captures are not supported).".into(),
            ))
        }
    };
    let sa = t
        .storage_accounts
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(&account))
        .ok_or_else(|| {
            AzError::Failed(format!(
                "(StorageAccountNotFound) Storage account {account} is not in the lab."
            ))
        })?;
    // --storage-path https://<account>.blob.core.windows.net/<container>[/<prefix>]
    let (container, prefix) = match p.get("--storage-path") {
        Some(sp) => {
            let rest = sp.split_once("://").map(|x| x.1).unwrap_or(sp);
            let mut segs = rest.split('/').skip(1).filter(|s| !s.is_empty());
            let cont = segs.next().unwrap_or(&sa.container).to_string();
            let pre: Vec<&str> = segs.collect();
            (cont, pre.join("/"))
        }
        None => (sa.container.clone(), String::new()),
    };
    let time_limit = num(p, "--time-limit", 18000)?;
    let snap = num(p, "--capture-size", 0)?;
    let total = num(p, "--capture-limit", 1_073_741_824)?;
    if time_limit == 0 || time_limit > 18000 {
        return Err(AzError::Failed(
            "(InvalidRequestFormat) --time-limit must be 1-18000 seconds.".into(),
        ));
    }
    let filters: Value = match p.get("--filters") {
        Some(f) => serde_json::from_str(f)
            .map_err(|e| AzError::Failed(format!("--filters is not valid JSON: {e}")))?,
        None => json!([]),
    };
    let bpf = bpf_from_filters(&filters)?;
    let started = chrono::Utc::now();
    let blob = format!(
        "{}{}/{}/{}/{}_{}.cap",
        if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        },
        t.subscription_id.to_lowercase(),
        t.resource_group.to_lowercase(),
        vm.name.to_lowercase(),
        name,
        started.format("%Y%m%d%H%M%S")
    );
    let dir = c.lab.run_dir().join("az").join("pcap");
    std::fs::create_dir_all(&dir)
        .map_err(|e| AzError::Failed(format!("cannot create {}: {e}", dir.display())))?;
    let file = dir.join(format!("{name}.pcap"));
    let mut args: Vec<String> = vec![
        time_limit.to_string(),
        "tcpdump".into(),
        "-i".into(),
        "eth0".into(),
        "-n".into(),
        "-U".into(),
        // deliver each packet at once (no TPACKET_V3 block timeout), so a capture stopped
        // right after the traffic still holds it
        "--immediate-mode".into(),
        "-s".into(),
        snap.to_string(),
        "-w".into(),
        file.display().to_string(),
    ];
    if !bpf.is_empty() {
        args.push(bpf);
    }
    let ns = c.lab.vm(&vm.name).map_err(AzError::from)?.ns.clone();
    let proc = c
        .lab
        .spawn(
            &ns,
            &vm.name,
            &format!("packet-capture:{name}"),
            "timeout",
            &args,
        )
        .map_err(AzError::from)?;
    // tcpdump creates the file once it listens
    let t0 = std::time::Instant::now();
    while !file.exists() && t0.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let cap = Capture {
        name,
        vm: vm.name.clone(),
        account: sa.name.clone(),
        container,
        blob,
        file: file.display().to_string(),
        time_limit,
        bytes_per_packet: snap,
        total_bytes: total,
        filters,
        proc: Some(proc),
        started: started.to_rfc3339(),
        status: "Running".into(),
        stop_reason: None,
        error: None,
    };
    all.push(cap.clone());
    save(c, &all)?;
    Ok(Some(capture_json(c, &cap)))
}

/// `packet-capture show`.
pub fn pc_show(c: &mut Ctx, p: &Parsed) -> Out {
    check_location(c, p)?;
    let mut all = load(c);
    settle(c, &mut all);
    save(c, &all)?;
    let cap = find(c, &mut all, p.req("--name"))?.clone();
    Ok(Some(capture_json(c, &cap)))
}

/// `packet-capture show-status`.
pub fn pc_status(c: &mut Ctx, p: &Parsed) -> Out {
    check_location(c, p)?;
    let mut all = load(c);
    settle(c, &mut all);
    save(c, &all)?;
    let loc = c.lab.topology().location.clone();
    let cap = find(c, &mut all, p.req("--name"))?.clone();
    let status = match (cap.status.as_str(), cap.stop_reason.as_deref()) {
        ("Running", _) => "Running",
        (_, Some("Error")) => "Error",
        _ => "Stopped",
    };
    Ok(Some(json!({
        "captureStartTime": cap.started,
        "id": format!("{}/packetCaptures/{}", watcher_id(c, &loc), cap.name),
        "name": cap.name,
        "packetCaptureError": cap.error.iter().collect::<Vec<_>>(),
        "packetCaptureStatus": status,
        "stopReason": cap.stop_reason,
    })))
}

/// `packet-capture stop`.
pub fn pc_stop(c: &mut Ctx, p: &Parsed) -> Out {
    check_location(c, p)?;
    let mut all = load(c);
    settle(c, &mut all);
    let st = store(c).ok();
    let cap = find(c, &mut all, p.req("--name"))?;
    if cap.status == "Running" {
        if let Some(pr) = &cap.proc {
            sys::stop(pr, std::time::Duration::from_secs(2));
        }
        finish(cap, st.as_ref(), "Manual");
        let cap = cap.clone();
        forget_proc(c, &cap);
    }
    save(c, &all)?;
    Ok(None)
}

/// `packet-capture delete`: stops it if running (without upload), forgets it.
pub fn pc_delete(c: &mut Ctx, p: &Parsed) -> Out {
    check_location(c, p)?;
    let mut all = load(c);
    settle(c, &mut all);
    let name = p.req("--name").to_string();
    let cap = find(c, &mut all, &name)?.clone();
    if cap.status == "Running" {
        if let Some(pr) = &cap.proc {
            sys::stop(pr, std::time::Duration::from_secs(2));
        }
        let _ = std::fs::remove_file(&cap.file);
        forget_proc(c, &cap);
    }
    all.retain(|x| !x.name.eq_ignore_ascii_case(&name));
    save(c, &all)?;
    Ok(None)
}

/// `packet-capture list`.
pub fn pc_list(c: &mut Ctx, p: &Parsed) -> Out {
    check_location(c, p)?;
    let mut all = load(c);
    settle(c, &mut all);
    save(c, &all)?;
    Ok(Some(Value::Array(
        all.iter().map(|x| capture_json(c, x)).collect(),
    )))
}

// ---------------------------------------------------------------------------------------
// storage blob

fn blob_target(c: &Ctx, p: &Parsed) -> Result<(String, String), AzError> {
    if let Some(m) = p.get("--auth-mode") {
        if !m.eq_ignore_ascii_case("login") && !m.eq_ignore_ascii_case("key") {
            return Err(AzError::Usage(format!(
                "argument --auth-mode: invalid choice: '{m}' (choose from 'key', 'login')"
            )));
        }
    }
    // az falls back to AZURE_STORAGE_ACCOUNT when --account-name is absent
    let env_account = std::env::var("AZURE_STORAGE_ACCOUNT").ok();
    let Some(account) = p.get("--account-name").or(env_account.as_deref()) else {
        return Err(AzError::Failed(
            "Missing storage account name: give --account-name or set AZURE_STORAGE_ACCOUNT."
                .into(),
        ));
    };
    let sa = c
        .lab
        .topology()
        .storage_accounts
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(account))
        .ok_or_else(|| {
            AzError::Failed(format!(
                "(StorageAccountNotFound) The storage account {account} is not in the lab."
            ))
        })?;
    let container = p.req("--container-name").to_string();
    let st = store(c)?;
    if !st.container_exists(&sa.name, &container) {
        return Err(AzError::NotFound {
            code: "ContainerNotFound".into(),
            message: "The specified container does not exist.".into(),
        });
    }
    Ok((sa.name.clone(), container))
}

fn blob_json(container: &str, b: &crate::blobd::store::BlobProps) -> Value {
    let modified: chrono::DateTime<chrono::Utc> = b.modified.into();
    json!({
        "container": container,
        "deleted": false,
        "name": b.name,
        "properties": {
            "blobType": "BlockBlob",
            "contentLength": b.len,
            "contentSettings": {"contentMd5": b.md5, "contentType": "application/octet-stream"},
            "etag": b.etag,
            "lastModified": modified.to_rfc3339(),
        },
    })
}

fn settle_all(c: &mut Ctx) {
    let mut all = load(c);
    if all.iter().any(|x| x.status == "Running") {
        settle(c, &mut all);
        let _ = save(c, &all);
    }
}

fn blob_missing() -> AzError {
    AzError::NotFound {
        code: "BlobNotFound".into(),
        message: "The specified blob does not exist.".into(),
    }
}

/// `storage blob upload`.
pub fn blob_upload(c: &mut Ctx, p: &Parsed) -> Out {
    settle_all(c);
    let (a, cont) = blob_target(c, p)?;
    let st = store(c)?;
    let name = p.req("--name");
    crate::blobd::store::validate_blob(name)
        .map_err(|e| AzError::Failed(format!("(InvalidResourceName) {e}")))?;
    if !p.has("--overwrite") {
        if let Ok(Some(_)) = st.props(&a, &cont, name) {
            return Err(AzError::Failed(
                "The specified blob already exists. Use --overwrite to replace it.".into(),
            ));
        }
    }
    let file = p.req("--file");
    let mut f = std::fs::File::open(file)
        .map_err(|e| AzError::Failed(format!("cannot read {file}: {e}")))?;
    let props = st
        .put_blob(&a, &cont, name, &mut f, None)
        .map_err(|e| AzError::Failed(e.to_string()))?;
    let modified: chrono::DateTime<chrono::Utc> = props.modified.into();
    Ok(Some(json!({
        "client_request_id": null,
        "content_md5": props.md5,
        "date": modified.to_rfc3339(),
        "etag": props.etag,
        "lastModified": modified.to_rfc3339(),
        "request_id": null,
        "version": "2022-11-02",
    })))
}

/// `storage blob download`.
pub fn blob_download(c: &mut Ctx, p: &Parsed) -> Out {
    settle_all(c);
    let (a, cont) = blob_target(c, p)?;
    let st = store(c)?;
    let name = p.req("--name");
    let props = st
        .props(&a, &cont, name)
        .ok()
        .flatten()
        .ok_or_else(blob_missing)?;
    let file = p.req("--file");
    std::fs::copy(st.blob_path(&a, &cont, name), file)
        .map_err(|e| AzError::Failed(format!("cannot write {file}: {e}")))?;
    Ok(Some(blob_json(&cont, &props)))
}

/// `storage blob list`.
pub fn blob_list(c: &mut Ctx, p: &Parsed) -> Out {
    settle_all(c);
    let (a, cont) = blob_target(c, p)?;
    let st = store(c)?;
    let v = st
        .list(&a, &cont, p.get("--prefix").unwrap_or(""))
        .map_err(|e| AzError::Failed(e.to_string()))?;
    // `--num-results *` asks the real CLI for every page.
    let max = match p.get("--num-results") {
        Some("*") => usize::MAX,
        _ => num(p, "--num-results", 5000)? as usize,
    };
    Ok(Some(Value::Array(
        v.iter().take(max).map(|b| blob_json(&cont, b)).collect(),
    )))
}

/// `storage blob show`.
pub fn blob_show(c: &mut Ctx, p: &Parsed) -> Out {
    settle_all(c);
    let (a, cont) = blob_target(c, p)?;
    let st = store(c)?;
    let props = st
        .props(&a, &cont, p.req("--name"))
        .ok()
        .flatten()
        .ok_or_else(blob_missing)?;
    Ok(Some(blob_json(&cont, &props)))
}

/// `storage blob delete`.
pub fn blob_delete(c: &mut Ctx, p: &Parsed) -> Out {
    let (a, cont) = blob_target(c, p)?;
    let st = store(c)?;
    match st.delete(&a, &cont, p.req("--name")) {
        Ok(true) => Ok(None),
        Ok(false) => Err(blob_missing()),
        Err(e) => Err(AzError::Failed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_bpf() {
        let f = json!([{"protocol": "TCP", "remoteIPAddress": "198.18.1.4", "localPort": "80,8000-8080"},
                       {"protocol": "Any", "remotePort": "53"}]);
        assert_eq!(
            bpf_from_filters(&f).unwrap(),
            "(tcp and (host 198.18.1.4) and (port 80 or portrange 8000-8080)) or ((port 53))"
        );
        assert_eq!(bpf_from_filters(&json!([])).unwrap(), "");
        assert!(bpf_from_filters(&json!([{"protocol": "ICMP"}])).is_err());
        assert!(bpf_from_filters(&json!([{"localPort": "80; rm -rf /"}])).is_err());
        assert!(bpf_from_filters(&json!([{"localIPAddress": "1.2.3.4-1.2.3.9"}])).is_err());
    }
}
